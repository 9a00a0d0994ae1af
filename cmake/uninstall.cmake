# uninstall.cmake - remove what an install wrote, from its manifest
# (install_manifest.txt, which every install writes into the build
# directory; its paths leave DESTDIR out, so the same DESTDIR must be in the
# environment here as for the install: `make uninstall DESTDIR=...`).  CMake has no uninstall of
# its own; this is the recipe its FAQ gives.
#
#   cmake -DMANIFEST=build/install_manifest.txt -P cmake/uninstall.cmake
#
# A configuration file (under etc) that was edited since the install is
# kept, with a message (cmake/etcfiles.cmake says how that is known).
# Directories are removed only when the install made them ours and they are
# left empty: include/ferry, share/doc/ferry and etc/ferry, never bin or lib.
if(NOT DEFINED MANIFEST)
  set(MANIFEST "${CMAKE_CURRENT_LIST_DIR}/../build/install_manifest.txt")
endif()
if(NOT EXISTS "${MANIFEST}")
  message(FATAL_ERROR "uninstall: ${MANIFEST} not found: nothing was installed from this build")
endif()

include(${CMAKE_CURRENT_LIST_DIR}/etcfiles.cmake)
ferry_etc_record(record "${MANIFEST}")

file(STRINGS "${MANIFEST}" files)
set(dirs)
foreach(path ${files})
  set(f "$ENV{DESTDIR}${path}")
  # A configuration file the administrator edited stays (etcfiles.cmake).
  # (Only a file with a record: the others are not configuration.)
  ferry_etc_recorded(sum "${record}" "${path}")
  if(sum)
    ferry_etc_keep(keep "${record}" "${path}" "Kept (changed since it was installed)")
    if(keep)
      continue()
    endif()
  endif()
  if(IS_SYMLINK "${f}" OR EXISTS "${f}")
    message(STATUS "Removing: ${f}")
    file(REMOVE "${f}")
  endif()
  get_filename_component(d "${f}" DIRECTORY)
  if(d MATCHES "/include/ferry$" OR d MATCHES "/doc/ferry$" OR d MATCHES "/etc/ferry$")
    list(APPEND dirs "${d}")
  elseif(d MATCHES "/doc/ferry/examples$")
    get_filename_component(parent "${d}" DIRECTORY)
    list(APPEND dirs "${d}" "${parent}")
  endif()
endforeach()
list(REMOVE_DUPLICATES dirs)
list(SORT dirs ORDER DESCENDING)
foreach(d ${dirs})
  file(GLOB left "${d}/*")
  if(IS_DIRECTORY "${d}" AND NOT left)
    execute_process(COMMAND ${CMAKE_COMMAND} -E remove_directory "${d}")
  endif()
endforeach()
