# install.cmake - what `make install` (cmake --install) puts where, by the
# GNU directory conventions (GNUInstallDirs): PREFIX/bin/ferry,
# PREFIX/sbin/ferryd (a daemon an administrator starts, as sshd), the
# library, its headers and ferry.pc, the man pages, an example host
# configuration and the bash and zsh completions.  `make uninstall` removes
# what the last install wrote (cmake/uninstall.cmake).
include(GNUInstallDirs)

install(TARGETS ferry_client RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS ferryd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS ferry ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS ferry_so LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ferry
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")

# ferry.pc is relocatable: its prefix is found from where the file lies
# (${pcfiledir}), so `cmake --install build --prefix DIR` and a DESTDIR
# staging tree both give a correct file without configuring again.
file(RELATIVE_PATH FERRY_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig
     ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" FERRY_PC_TO_PREFIX "${FERRY_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/ferry.pc.in ${CMAKE_BINARY_DIR}/ferry.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/ferry.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The man pages are installed as written (mdoc); `mandoc -T lint` checks
# them (tests/integration/test_manpages.py).
foreach(page ferry.1 ferry-config.5 libferry.3 ferryd.8)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
  install(FILES ${PROJECT_SOURCE_DIR}/man/${page}
          DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()

install(FILES ${PROJECT_SOURCE_DIR}/etc/config.example
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples RENAME config)

# bash completion, where bash-completion looks for it on demand.
install(FILES ${PROJECT_SOURCE_DIR}/completion/ferry.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME ferry)
# zsh completion: zsh's own directory for it (site-functions, which
# Debian's zsh searches under /usr/local too); for PREFIX=/usr on a system
# whose zsh has vendor-completions (Debian's, which does not search
# /usr/share/zsh/site-functions), that one, as Debian's packages do.
set(ferry_zsh_dir ${CMAKE_INSTALL_DATADIR}/zsh/site-functions)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" AND IS_DIRECTORY /usr/share/zsh/vendor-completions)
  set(ferry_zsh_dir ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)
endif()
set(FERRY_ZSH_COMPLETIONDIR ${ferry_zsh_dir}
    CACHE STRING "where the zsh completion _ferry goes (relative: under the prefix)")
install(FILES ${PROJECT_SOURCE_DIR}/completion/_ferry DESTINATION ${FERRY_ZSH_COMPLETIONDIR})

# The Ansible connection plugin, where ansible-core looks by default when
# PREFIX is /usr (/usr/share/ansible/plugins/connection); under another
# PREFIX, ANSIBLE_CONNECTION_PLUGINS or ansible.cfg names the directory.
install(FILES ${PROJECT_SOURCE_DIR}/ansible/plugins/connection/ferry.py
        DESTINATION ${CMAKE_INSTALL_DATADIR}/ansible/plugins/connection)

include(${PROJECT_SOURCE_DIR}/cmake/systemd.cmake)
