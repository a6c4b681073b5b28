# find_package(rnnedge): the installed target rnnedge::rnnedge (with the RNNEDGE_EXTENSIONS=0 definition if it was
# built with RNNEDGE_EXTENSIONS=OFF) and rnnedge_add_model().
include("${CMAKE_CURRENT_LIST_DIR}/rnnedgeTargets.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/rnnedgeModel.cmake")
