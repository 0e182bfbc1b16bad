# wasi-toolchain.cmake — cross-compile the core to wasm32-wasi with clang-19.
#
# Used as   cmake -S . -B build/wasm -DCMAKE_TOOLCHAIN_FILE=cmake/wasi-toolchain.cmake
#
# The toolchain is Debian's: clang-19, lld-19 (wasm-ld-19), wasi-libc and
# libclang-rt-19-dev-wasm32 (compiler-rt builtins for wasm32). clang finds the
# WASI headers and libraries under /usr/{include,lib}/wasm32-wasi on its own,
# but with the default sysroot "/" it would also search /usr/include, where the
# host's glibc headers live. To make that impossible we build a private sysroot
# in the build tree that holds nothing but symlinks to the WASI directories:
#
#   <build>/wasi-sysroot/include/wasm32-wasi -> /usr/include/wasm32-wasi
#   <build>/wasi-sysroot/lib/wasm32-wasi     -> /usr/lib/wasm32-wasi
#
# Set NT_WASI_INCLUDE / NT_WASI_LIB to point at another wasi-libc (a wasi-sdk).

set(CMAKE_SYSTEM_NAME Generic)          # CMake 3.25 has no WASI platform file
set(CMAKE_SYSTEM_PROCESSOR wasm32)
set(NT_WASM ON)                         # CMakeLists.txt keys on this

find_program(NT_CLANG NAMES clang-19 REQUIRED)
find_program(NT_WASM_LD NAMES wasm-ld-19 REQUIRED)
find_program(NT_LLVM_AR NAMES llvm-ar-19 llvm-ar)
find_program(NT_LLVM_RANLIB NAMES llvm-ranlib-19 llvm-ranlib)

set(CMAKE_C_COMPILER "${NT_CLANG}")
set(CMAKE_C_COMPILER_TARGET wasm32-wasi)
if(NT_LLVM_AR)
  set(CMAKE_AR "${NT_LLVM_AR}" CACHE FILEPATH "" FORCE)
  set(CMAKE_RANLIB "${NT_LLVM_RANLIB}" CACHE FILEPATH "" FORCE)
endif()

set(NT_WASI_INCLUDE "/usr/include/wasm32-wasi" CACHE PATH "wasi-libc headers")
set(NT_WASI_LIB "/usr/lib/wasm32-wasi" CACHE PATH "wasi-libc libraries and crt1")

# The toolchain file is read again for every try_compile, from a scratch
# directory; the sysroot location is fixed by the first (real) configure and
# handed down to those runs.
if(NOT NT_WASI_SYSROOT)
  set(NT_WASI_SYSROOT "${CMAKE_BINARY_DIR}/wasi-sysroot")
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES
     NT_WASI_SYSROOT NT_WASI_INCLUDE NT_WASI_LIB)
if(NOT EXISTS "${NT_WASI_SYSROOT}/lib/wasm32-wasi/crt1-reactor.o")
  if(NOT EXISTS "${NT_WASI_LIB}/crt1-reactor.o")
    message(FATAL_ERROR "wasi-libc not found in ${NT_WASI_LIB}; run scripts/setup")
  endif()
  file(MAKE_DIRECTORY "${NT_WASI_SYSROOT}/include" "${NT_WASI_SYSROOT}/lib")
  file(CREATE_LINK "${NT_WASI_INCLUDE}" "${NT_WASI_SYSROOT}/include/wasm32-wasi" SYMBOLIC)
  file(CREATE_LINK "${NT_WASI_LIB}" "${NT_WASI_SYSROOT}/lib/wasm32-wasi" SYMBOLIC)
endif()
set(CMAKE_SYSROOT "${NT_WASI_SYSROOT}")

# Link with lld-19 explicitly, never whatever "wasm-ld" is first on PATH.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-fuse-ld=${NT_WASM_LD}")

# Nothing from the host may be found.
set(CMAKE_FIND_ROOT_PATH "${NT_WASI_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

