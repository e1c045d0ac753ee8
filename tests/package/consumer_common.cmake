# Shared by the consumer projects: the executable every one of them builds, and the promises the
# alibi::alibi target makes to a consumer, checked at configure time.
set(ALIBI_CONSUMER_MAIN "${CMAKE_CURRENT_LIST_DIR}/consumer_main.cpp")

function(alibi_check_consumer_target)
  if(NOT TARGET alibi::alibi)
    message(FATAL_ERROR "alibi::alibi is not a target after bringing alibi in")
  endif()
  # Consumers choose ISA flags and warning levels: the interface must not impose any.
  get_target_property(options alibi::alibi INTERFACE_COMPILE_OPTIONS)
  if(options)
    message(FATAL_ERROR "alibi::alibi must carry no compile options, has: ${options}")
  endif()
  get_target_property(definitions alibi::alibi INTERFACE_COMPILE_DEFINITIONS)
  if(definitions)
    message(FATAL_ERROR "alibi::alibi must carry no compile definitions, has: ${definitions}")
  endif()
endfunction()

function(alibi_add_consumer)
  add_executable(alibi_consumer "${ALIBI_CONSUMER_MAIN}")
  target_link_libraries(alibi_consumer PRIVATE alibi::alibi)
endfunction()
