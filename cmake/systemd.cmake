# systemd.cmake - what `make install` adds for running ferryd as a system
# service: ferryd.service and ferryd.socket, the `ferry` account
# (sysusers.d) and its served directory (tmpfiles.d), and the server's
# configuration file.  The README's "Run ferryd as a service" explains
# the units.
#
# Where: under the prefix (PREFIX/lib/systemd/system, PREFIX/lib/sysusers.d,
# PREFIX/lib/tmpfiles.d, which systemd reads for /usr/local too); for
# PREFIX=/usr, the directories systemd's own pkg-config file names
# (systemdsystemunitdir...), as distributions expect.  Each can be set
# with -DFERRY_SYSTEMD_UNITDIR=... and the like.
#
# The unit names ferryd and its configuration by absolute path, so it is
# written at install time, for the prefix then in force (`cmake --install
# --prefix DIR` included).  The configuration is the administrator's once
# edited: an install replaces it only while it is unchanged, an uninstall
# removes it only then (cmake/etcfiles.cmake).  Rules are in the
# component "service" (a plain `make install` installs every component).
include(GNUInstallDirs)

function(ferry_systemd_dir var pcvar fallback)
  if(NOT ${var})
    set(dir "")
    if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" AND PKG_CONFIG_FOUND)
      pkg_get_variable(dir systemd ${pcvar})
    endif()
    if(NOT dir)
      set(dir ${fallback})
    endif()
    set(${var} ${dir} CACHE STRING "where ferry's ${pcvar} files go (relative: under the prefix)")
  endif()
endfunction()
ferry_systemd_dir(FERRY_SYSTEMD_UNITDIR systemdsystemunitdir lib/systemd/system)
ferry_systemd_dir(FERRY_SYSUSERSDIR sysusersdir lib/sysusers.d)
ferry_systemd_dir(FERRY_TMPFILESDIR tmpfilesdir lib/tmpfiles.d)

set(FERRY_SYSTEMD_SRC ${PROJECT_SOURCE_DIR}/systemd)
set(FERRY_SYSTEMD_OUT ${CMAKE_BINARY_DIR}/systemd)
install(CODE "
  # At install time: the prefix of this install, absolute directories kept.
  macro(ferry_abs var dir)
    if(IS_ABSOLUTE \"\${dir}\")
      set(\${var} \"\${dir}\")
    else()
      set(\${var} \"\${CMAKE_INSTALL_PREFIX}/\${dir}\")
    endif()
  endmacro()
  ferry_abs(FERRY_UNIT_SBINDIR \"${CMAKE_INSTALL_SBINDIR}\")
  ferry_abs(FERRY_UNIT_SYSCONFDIR \"${CMAKE_INSTALL_SYSCONFDIR}\")
  # GNUInstallDirs' rule for the full etc directory: /etc for the prefixes
  # / and /usr, /etc/opt/NAME for /opt/NAME.
  if(\"${CMAKE_INSTALL_SYSCONFDIR}\" STREQUAL \"etc\")
    if(\"\${CMAKE_INSTALL_PREFIX}\" MATCHES \"^/(usr/?)?$\")
      set(FERRY_UNIT_SYSCONFDIR /etc)
    elseif(\"\${CMAKE_INSTALL_PREFIX}\" MATCHES \"^/opt/(.+)$\")
      set(FERRY_UNIT_SYSCONFDIR \"/etc/opt/\${CMAKE_MATCH_1}\")
    endif()
  endif()
  ferry_abs(unitdir \"${FERRY_SYSTEMD_UNITDIR}\")
  ferry_abs(sysusersdir \"${FERRY_SYSUSERSDIR}\")
  ferry_abs(tmpfilesdir \"${FERRY_TMPFILESDIR}\")
  configure_file(\"${FERRY_SYSTEMD_SRC}/ferryd.service.in\"
                 \"${FERRY_SYSTEMD_OUT}/ferryd.service\" @ONLY)
  configure_file(\"${PROJECT_SOURCE_DIR}/etc/ferryd.conf.in\"
                 \"${FERRY_SYSTEMD_OUT}/ferryd.conf\" @ONLY)
  file(INSTALL \"${FERRY_SYSTEMD_OUT}/ferryd.service\" \"${FERRY_SYSTEMD_SRC}/ferryd.socket\"
       DESTINATION \"\${unitdir}\" FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  file(INSTALL \"${FERRY_SYSTEMD_SRC}/ferry-sysusers.conf\" DESTINATION \"\${sysusersdir}\"
       RENAME ferry.conf FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  file(INSTALL \"${FERRY_SYSTEMD_SRC}/ferry-tmpfiles.conf\" DESTINATION \"\${tmpfilesdir}\"
       RENAME ferry.conf FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  # No key here: the file is not secret, and root (or ferry) alone may
  # change it (ferryd refuses it otherwise).  Once edited it is the
  # administrator's: etcfiles.cmake keeps it, here and at uninstall.
  include(\"${PROJECT_SOURCE_DIR}/cmake/etcfiles.cmake\")
  ferry_etc_record_here(record \"${CMAKE_BINARY_DIR}\")
  ferry_install_etc(\"${FERRY_SYSTEMD_OUT}/ferryd.conf\" \"\${FERRY_UNIT_SYSCONFDIR}/ferry\"
                    \"\${record}\")
" COMPONENT service)
