# rnnedge_add_model(): included by firmware_ref/CMakeLists.txt and by the installed package (rnnedgeConfig.cmake).
include_guard(GLOBAL)

# rnnedge_add_model(<name> <dir>): a static library <name> of <dir>/model_data.c (an export's firmware folder),
# with <dir> on its public include path (model_data.h; vectors_data.h if present) and rnnedge::rnnedge linked.
function(rnnedge_add_model name dir)
  get_filename_component(dir "${dir}" ABSOLUTE)
  if(NOT EXISTS "${dir}/model_data.c" OR NOT EXISTS "${dir}/model_data.h")
    message(FATAL_ERROR "rnnedge_add_model(${name}): ${dir} has no model_data.c and model_data.h (an export writes "
                        "them to <out>/firmware/<precision>/)")
  endif()
  add_library(${name} STATIC "${dir}/model_data.c")
  target_include_directories(${name} PUBLIC "${dir}")
  target_link_libraries(${name} PUBLIC rnnedge::rnnedge)
  set_target_properties(${name} PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
endfunction()
