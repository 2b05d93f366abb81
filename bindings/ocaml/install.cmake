# install.cmake: `cmake --install` of the OCaml binding (bindings/ocaml/CMakeLists.txt includes
# this from its install(CODE)).  dune builds the library again, in a build directory of its own,
# with the link flags of the install prefix (-L PREFIX/LIBDIR, -rpath PREFIX/LIBDIR): the flags are
# recorded in the installed META/dune-package and in dllnbdpp_stubs.so, so programs built against
# the installed package load the installed libnbd.so.0.  libnbd.so itself is installed before
# this runs (the top-level install rules come first).  Then the files dune lists for installation
# are copied to PREFIX/NBD_OCAML_DIR/nbdpp (and the stubs' .so to PREFIX/NBD_OCAML_DIR/stublibs,
# where the installed dune-package looks for it).
# Input variables: NBDPP_DUNE, NBDPP_OCAML_SOURCE, NBDPP_DUNE_BUILD, NBDPP_GENERATED_DIR,
# NBDPP_INCLUDE_DIR, NBDPP_INSTALL_LIBDIR, NBDPP_OCAML_DIR (both relative to the prefix or absolute),
# NBDPP_VERSION (the project's, for META).

foreach(_dir NBDPP_INSTALL_LIBDIR NBDPP_OCAML_DIR)
  if(IS_ABSOLUTE "${${_dir}}")
    set(_${_dir} "${${_dir}}")
  else()
    set(_${_dir} "${CMAKE_INSTALL_PREFIX}/${${_dir}}")
  endif()
endforeach()
set(_libdir "${_NBDPP_INSTALL_LIBDIR}")
set(_ocamldir "${_NBDPP_OCAML_DIR}")
# file(INSTALL) adds DESTDIR by itself; the other file() commands need it spelt out.
set(_staged "$ENV{DESTDIR}${_ocamldir}")

message(STATUS "Building the OCaml binding for ${_libdir}")
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env
          "NBDPP_GENERATED_DIR=${NBDPP_GENERATED_DIR}"
          "NBDPP_INCLUDE_DIR=${NBDPP_INCLUDE_DIR}"
          "NBDPP_LIB_DIR=${_libdir}"
          "NBDPP_RPATH_DIR=${_libdir}"
          # Under DESTDIR, libnbd.so is found there at link time, but only the final directory
          # is recorded (gcc reads LIBRARY_PATH; -L would end up in the package).
          "LIBRARY_PATH=$ENV{DESTDIR}${_libdir}"
          ${NBDPP_DUNE} build --root "${NBDPP_OCAML_SOURCE}" --build-dir "${NBDPP_DUNE_BUILD}"
          --display quiet -j 2 @install
  RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "dune could not build the OCaml binding for installation (${_rc})")
endif()

# dune's install tree holds symlinks into its build directory: install the files they point to.
set(_from "${NBDPP_DUNE_BUILD}/install/default/lib")
file(REMOVE_RECURSE "${_staged}/nbdpp")
foreach(_section nbdpp stublibs)
  file(GLOB _files LIST_DIRECTORIES false "${_from}/${_section}/*")
  foreach(_file IN LISTS _files)
    get_filename_component(_name "${_file}" NAME)
    file(REAL_PATH "${_file}" _real)
    file(REMOVE "${_staged}/${_section}/${_name}")
    file(INSTALL "${_real}" DESTINATION "${_ocamldir}/${_section}" RENAME "${_name}")
  endforeach()
endforeach()
if(NOT EXISTS "${_staged}/nbdpp/META")
  message(FATAL_ERROR "dune produced no META for nbdpp in ${_from}/nbdpp")
endif()
# dune writes a version into META only from dune-project or git; the project's version is the
# one in the top CMakeLists.txt, so it is put in here (`ocamlfind query -format %v nbdpp`).
file(READ "${_staged}/nbdpp/META" _meta)
string(REGEX REPLACE "(^|\n)version = \"[^\"]*\"\n" "\\1" _meta "${_meta}")
file(WRITE "${_staged}/nbdpp/META" "version = \"${NBDPP_VERSION}\"\n${_meta}")
