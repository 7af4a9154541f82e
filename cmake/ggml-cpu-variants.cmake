# Builds only a chosen subset of ggml's CPU backend variants.
#
# Why: llama-cpp-sys-2's `dynamic-backends` feature turns on GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS, and
# ggml then compiles its whole CPU backend once per variant (14 on x86-64, 8 on aarch64 Linux). On a
# 2-core machine that alone would add ~25 minutes to a from-scratch build. ggml has no option to pick
# variants, so this file (run by CMake right after each `project()` of llama.cpp's build, through
# CMAKE_PROJECT_INCLUDE set in .cargo/config.toml and forwarded by llama-cpp-sys-2's build.rs) wraps three
# commands: a variant not in the list is still *declared* (ggml's CMake keeps configuring it unchanged),
# but it is excluded from the default build, from `ggml`'s dependencies and from `install`, so it is
# never compiled and never copied next to the binary.
#
# The list is GGML_H2OVL_CPU_VARIANTS (comma-separated ggml variant names; the GGML_ prefix makes
# llama-cpp-sys-2 forward it as a CMake define and re-run its build script when it changes). Names of
# the other architecture are ignored. Changing the list needs `cargo clean -p llama-cpp-sys-2` (the crate
# configures CMake only once per build dir).
include_guard(GLOBAL)

if(NOT DEFINED GGML_H2OVL_CPU_VARIANTS OR GGML_H2OVL_CPU_VARIANTS STREQUAL "")
    # No list: every variant ggml knows (upstream's release build).
    return()
endif()
# `-C target-cpu=native` makes llama-cpp-sys-2 ask for GGML_NATIVE, which ggml refuses together with
# run-time-loaded variants; the variants already cover the build machine's ISA, so native is dropped.
set(GGML_NATIVE OFF CACHE BOOL "h2ovl: CPU variants replace a native build" FORCE)
string(REPLACE "," ";" _h2ovl_keep "${GGML_H2OVL_CPU_VARIANTS}")
message(STATUS "h2ovl: ggml CPU variants built: ${_h2ovl_keep}")

# TRUE if `name` is a CPU variant target (ggml-cpu-<v> or its feature-probe object ggml-cpu-<v>-feats)
# whose variant is not in the list.
function(_h2ovl_dropped name out)
    set(${out} FALSE PARENT_SCOPE)
    if(name MATCHES "^ggml-cpu-(.+)$")
        string(REGEX REPLACE "-feats$" "" _v "${CMAKE_MATCH_1}")
        if(NOT _v IN_LIST _h2ovl_keep)
            set(${out} TRUE PARENT_SCOPE)
        endif()
    endif()
endfunction()

function(add_library name)
    _h2ovl_dropped("${name}" _drop)
    if(_drop)
        list(GET ARGN 0 _type)
        list(REMOVE_AT ARGN 0)
        _add_library(${name} ${_type} EXCLUDE_FROM_ALL ${ARGN})
    else()
        _add_library(${name} ${ARGN})
    endif()
endfunction()

function(add_dependencies target)
    set(_kept "")
    foreach(_d IN LISTS ARGN)
        _h2ovl_dropped("${_d}" _drop)
        if(NOT _drop)
            list(APPEND _kept "${_d}")
        endif()
    endforeach()
    if(_kept)
        _add_dependencies(${target} ${_kept})
    endif()
endfunction()

function(install)
    if(ARGC GREATER 1 AND ARGV0 STREQUAL "TARGETS")
        _h2ovl_dropped("${ARGV1}" _drop)
        if(_drop)
            return()
        endif()
    endif()
    _install(${ARGV})
endfunction()
