# etcfiles.cmake - configuration files (those installed under etc) are the
# administrator's once edited, as dpkg treats conffiles: an install puts
# one in place only where none is or where the file there is still the one
# the last install wrote, and `make uninstall` removes one only if it is
# unchanged since.  Otherwise both keep it and say so.
#
# "Unchanged" is judged by a record the install writes beside its manifest,
# build/install_checksums.txt (install_checksums_COMPONENT.txt for
# `cmake --install --component COMPONENT`, as CMake names the manifest):
# one "SHA256 PATH" line per file, PATH without DESTDIR as in the
# manifest.  A file with no record is kept by an install (it was not ours)
# and removed by an uninstall only if the manifest lists it, which it does
# only if an install wrote it and recorded it.
#
# Included by the install code of systemd.cmake (at install time) and by
# uninstall.cmake (in script mode); it defines functions only.

# The record that goes with MANIFEST (build/install_manifest[_X].txt).
function(ferry_etc_record out manifest)
  string(REGEX REPLACE "install_manifest([^/]*)\\.txt$" "install_checksums\\1.txt" r
         "${manifest}")
  set(${out} "${r}" PARENT_SCOPE)
endfunction()

# The record of the install running now, in BINDIR (the build directory).
function(ferry_etc_record_here out bindir)
  if(CMAKE_INSTALL_COMPONENT)
    set(${out} "${bindir}/install_checksums_${CMAKE_INSTALL_COMPONENT}.txt" PARENT_SCOPE)
  else()
    set(${out} "${bindir}/install_checksums.txt" PARENT_SCOPE)
  endif()
endfunction()

# The checksum RECORD holds for PATH, or "".
function(ferry_etc_recorded out record path)
  set(sum "")
  if(EXISTS "${record}")
    file(STRINGS "${record}" lines)
    foreach(line IN LISTS lines)
      if(line MATCHES "^([0-9a-f]+) (.+)$" AND CMAKE_MATCH_2 STREQUAL path)
        set(sum "${CMAKE_MATCH_1}")
      endif()
    endforeach()
  endif()
  set(${out} "${sum}" PARENT_SCOPE)
endfunction()

# True in OUT, and "WHY: FILE" said, if the file at PATH (DESTDIR added
# here) is there and is not what RECORD says was installed there: edited,
# or never ours.
function(ferry_etc_keep out record path why)
  set(${out} FALSE PARENT_SCOPE)
  if(NOT EXISTS "$ENV{DESTDIR}${path}")
    return()
  endif()
  ferry_etc_recorded(was "${record}" "${path}")
  file(SHA256 "$ENV{DESTDIR}${path}" now)
  if(NOT now STREQUAL was)
    message(STATUS "${why}: $ENV{DESTDIR}${path}")
    set(${out} TRUE PARENT_SCOPE)
  endif()
endfunction()

# At install time: install SRC into DIR (absolute, without DESTDIR) with
# mode 0644, unless the file there is the administrator's; record it.
function(ferry_install_etc src dir record)
  get_filename_component(name "${src}" NAME)
  set(path "${dir}/${name}")
  ferry_etc_keep(keep "${record}" "${path}" "Kept")
  if(keep)
    return()
  endif()
  file(INSTALL "${src}" DESTINATION "${dir}"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  # file(INSTALL) lists the file in the manifest's variable of this
  # function's scope: the install script's is the caller's.
  set(CMAKE_INSTALL_MANIFEST_FILES "${CMAKE_INSTALL_MANIFEST_FILES}" PARENT_SCOPE)
  file(SHA256 "$ENV{DESTDIR}${path}" sum)
  set(keep "")
  if(EXISTS "${record}")
    file(STRINGS "${record}" lines)
    foreach(line IN LISTS lines)
      if(NOT line MATCHES "^[0-9a-f]+ (.+)$" OR NOT CMAKE_MATCH_1 STREQUAL path)
        string(APPEND keep "${line}\n")
      endif()
    endforeach()
  endif()
  file(WRITE "${record}" "${keep}${sum} ${path}\n")
endfunction()
