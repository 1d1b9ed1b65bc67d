/* Put first on the include path of the engine-only build (CMakeLists.txt,
 * wsnotify_engine_no_lws): an engine file that includes libwebsockets
 * stops the build here. The engine reaches the network only through
 * core/engine/transport.h (docs/architecture.md, "Layers"). */
#error "core/engine and core/util include no libwebsockets header"
