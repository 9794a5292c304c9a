# run_fuzz.cmake: run one libFuzzer target for a bounded time (CTest calls it).
#   cmake -DFUZZER=exe -DSEEDS=dir -DWORK=dir -DARTIFACTS=dir -DSECONDS=n -P run_fuzz.cmake
# The seeds are copied into WORK/corpus (emptied first), which the fuzzer may
# grow; SEEDS, in the source tree, is only read. Fails if the fuzzer finds a
# crash, a leak, a timeout or an allocation over the limits.
foreach(v FUZZER SEEDS WORK ARTIFACTS SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_fuzz.cmake: ${v} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus ${ARTIFACTS})
if(IS_DIRECTORY ${SEEDS})
  file(GLOB seeds ${SEEDS}/*)
  if(seeds)
    file(COPY ${seeds} DESTINATION ${WORK}/corpus)
  endif()
endif()

get_filename_component(name ${FUZZER} NAME)
execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -rss_limit_mb=2048
          -max_len=65536 -timeout=10 -print_final_stats=1
          -artifact_prefix=${ARTIFACTS}/${name}- ${WORK}/corpus
  WORKING_DIRECTORY ${WORK}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${name} failed (${rc}); the input is in ${ARTIFACTS}/")
endif()
