# Compiles the built dashboard (web/dist, made by `npm run build` / `make build`) into the
# given target. Included from src/api/CMakeLists.txt. The generator runs on every build but
# rewrites its output only when web/dist changed; with no web/dist the binary still builds
# and serves no dashboard (GET / answers the health JSON).
set(SERVEML_WEB_DIST "${PROJECT_SOURCE_DIR}/web/dist" CACHE PATH "Built dashboard to embed into serveml")

function(serveml_embed_web target)
  set(out "${CMAKE_CURRENT_BINARY_DIR}/web_assets.cc")
  add_custom_target(${target}_web_assets
    COMMAND ${CMAKE_COMMAND} -DDIST=${SERVEML_WEB_DIST} -DOUT=${out}
            -P ${PROJECT_SOURCE_DIR}/web/embed_assets.cmake
    BYPRODUCTS ${out}
    COMMENT "Embedding the web dashboard"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
  add_dependencies(${target} ${target}_web_assets)
endfunction()
