# Assembles tests/guest/*.asm with nasm into flat binaries and embeds them in
# the static library irqlab_guest_snippets (see tests/guest/snippets.h).
find_program(IRQLAB_NASM nasm REQUIRED)
file(GLOB IRQLAB_GUEST_ASM CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/guest/*.asm)
set(_names "")
set(_bins "")
foreach(asm ${IRQLAB_GUEST_ASM})
  get_filename_component(name ${asm} NAME_WE)
  set(bin ${CMAKE_CURRENT_BINARY_DIR}/guest/${name}.bin)
  add_custom_command(OUTPUT ${bin}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/guest
    COMMAND ${IRQLAB_NASM} -f bin -o ${bin} ${asm}
    DEPENDS ${asm}
    COMMENT "nasm ${name}.asm" VERBATIM)
  list(APPEND _names ${name})
  list(APPEND _bins ${bin})
endforeach()
string(REPLACE ";" "," _names_arg "${_names}")
string(REPLACE ";" "," _bins_arg "${_bins}")
set(_cc ${CMAKE_CURRENT_BINARY_DIR}/guest/snippets.cc)
add_custom_command(OUTPUT ${_cc}
  COMMAND ${CMAKE_COMMAND} -DOUT=${_cc} -DNAMES=${_names_arg} -DBINS=${_bins_arg}
          -P ${CMAKE_CURRENT_SOURCE_DIR}/guest/embed.cmake
  DEPENDS ${_bins} ${CMAKE_CURRENT_SOURCE_DIR}/guest/embed.cmake
  COMMENT "Embedding guest snippets" VERBATIM)
add_library(irqlab_guest_snippets STATIC ${_cc})
