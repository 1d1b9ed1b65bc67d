#!/usr/bin/env luajit
-- wsnotify chat example in Lua: the same page, protocol and options as the
-- C example (examples/chat/).
--
-- Serves examples/chat/index.html at "/" and WebSockets at "/ws". Clients
-- send envelopes like
--
--   {"type":"json","channel":"room","message":{"action":"subscribe",
--    "channel":"room"},"message_id":"m1"}
--   {"type":"json","channel":"room","message":{"action":"broadcast",
--    "text":"hi"}}
--
-- "subscribe" adds the sender to message.channel and answers the sender
-- alone with {"status":"subscribed","channel":...} (reply_to_id = the
-- request's message_id); "broadcast" publishes the message object to every
-- subscriber of the envelope's channel.
--
-- No client can make the handlers wait for another (docs/api.md, "Slow
-- clients and handlers"): a browser that stops reading is closed once its
-- queue is full (drop_on_backpressure; close 1001 "going away:
-- backpressure"), and publishes never wait for room (nonblocking): one the
-- engine refuses (then only when the server as a whole is behind) is not
-- retried, the sender gets {"status":"error",...} and may send again.
--
-- Handlers run on this program's Lua thread (server:run() waits on the
-- engine's event queue and dispatches); SIGINT/SIGTERM end run(), the
-- server shuts down gracefully (every client gets close 1001) and the
-- program exits 0.
--
--   luajit examples/lua/chat.lua [--host ADDR] [--port N] [--static-dir DIR]
--                                [--verbose] [--broker URL] [--auth-token T]
--                                [--metrics] [--metrics-token T]
--                                [--tls-cert FILE --tls-key FILE]
--                                [--client-rate N] [--client-burst N]
-- (no --compression: the engine refuses permessage-deflate, docs/api.md).
-- --metrics serves the engine's counters at GET /metrics in the Prometheus
-- text format (docs/production.md); with --metrics-token T (or
-- $WSN_METRICS_TOKEN) only to "Authorization: Bearer T".
-- With --tls-cert and --tls-key the page and the WebSocket are served over
-- https:// and wss:// only (server:reload_tls() reads the files again; this
-- example's loop catches SIGINT and SIGTERM only).
--
-- Runs on LuaJIT, Lua 5.1 and 5.4. The module is found on LUA_PATH and
-- LUA_CPATH (installed), else in this checkout: bindings/lua and the CMake
-- build in build-lua/ (bindings/lua/setup.sh, scripts/run-chat.sh lua) or
-- build/.

local SHUTDOWN_TIMEOUT = 10 -- seconds

local function script_dir()
    local path = arg and arg[0] or ""
    return path:match("^(.*)/[^/]*$") or "."
end

local here = script_dir()
local repo = here .. "/../.."
do
    -- The checkout's module after any installed one.
    local abi = _VERSION == "Lua 5.4" and "5.4" or "5.1"
    package.path = here .. "/?.lua;" .. package.path .. ";" .. repo
        .. "/bindings/lua/?.lua"
    package.cpath = package.cpath .. ";" .. repo .. "/build-lua/lua/" .. abi
        .. "/?.so;" .. repo .. "/build/lua/" .. abi .. "/?.so"
end

local wsnotify = require "wsnotify"

local verbose = false

-- Channel names and ids come from clients: keep control characters out of
-- the terminal.
local function log(level, fmt, ...)
    local msg = string.format(fmt, ...):gsub("[%c\127]", "?")
    io.stderr:write(os.date("%Y-%m-%d %H:%M:%S"), " ",
                    string.format("%-5s", level), " chat: ", msg, "\n")
    io.stderr:flush()
end

-- ---- command line -----------------------------------------------------------

local USAGE = [[
usage: %s [--host ADDR] [--port N] [--static-dir DIR] [--verbose]
       [--broker URL] [--auth-token T] [--metrics] [--metrics-token T]
       [--tls-cert FILE --tls-key FILE]
       [--client-rate N] [--client-burst N]

  --host ADDR        listen address (default 127.0.0.1;
                     0.0.0.0 for every interface)
  --port N           TCP port (default $WSN_PORT, else 8080;
                     0 = any free port)
  --static-dir DIR   folder holding index.html (default: examples/chat
                     of this checkout)
  --verbose          log at debug level: also one line per
                     connection and per message
  --broker URL       share rooms with other chat servers through
                     Redis: redis://127.0.0.1:6379 (default
                     $WSN_BROKER, else none)
  --auth-token T     clients must send ?token=T or
                     "Authorization: Bearer T"; others get 401
                     (default $WSN_AUTH_TOKEN, else no check;
                     open the page as /?token=T)
  --metrics          serve GET /metrics (Prometheus text format)
  --metrics-token T  with --metrics: answer only requests with
                     'Authorization: Bearer T' (default
                     $WSN_METRICS_TOKEN, else open)
  --tls-cert FILE    PEM certificate (chain): serve https:// and
                     wss:// only
  --tls-key FILE     its PEM private key
  --client-rate N    messages a client may send per second before
                     it is closed with 1008 (default the engine's,
                     100; 0 = no limit)
  --client-burst N   what a quiet client may send at once (200)
]]

local PROG = "chat.lua"

local function fail(code, fmt, ...)
    io.stderr:write(PROG, ": ", string.format(fmt, ...), "\n")
    os.exit(code)
end

local function parse_port(text)
    if not text or not text:match("^%d+$") then return nil end
    local port = tonumber(text)
    if port > 65535 then return nil end
    return port
end

local function parse_args(argv)
    local cfg = {host = "127.0.0.1", port = 8080, static_dir = nil,
                 broker = os.getenv("WSN_BROKER") or "",
                 auth_token = os.getenv("WSN_AUTH_TOKEN"),
                 metrics = false, metrics_token = os.getenv("WSN_METRICS_TOKEN") or "",
                 tls_cert = "", tls_key = ""}
    if cfg.auth_token == "" then cfg.auth_token = nil end
    local env_port = os.getenv("WSN_PORT")
    if env_port and env_port ~= "" then
        cfg.port = parse_port(env_port) or fail(2, "bad WSN_PORT '%s'", env_port)
    end
    local i = 1
    while i <= #argv do
        local a = argv[i]
        local name, val = a:match("^(%-%-[^=]+)=(.*)$")
        name = name or a
        local function value()
            if val then return val end
            i = i + 1
            if argv[i] == nil then fail(2, "%s needs a value", name) end
            return argv[i]
        end
        if name == "-h" or name == "--help" then
            io.stdout:write(string.format(USAGE, PROG))
            os.exit(0)
        elseif name == "--host" then
            cfg.host = value()
        elseif name == "--port" or name == "-p" then
            local v = value()
            cfg.port = parse_port(v) or fail(2, "bad port '%s'", v)
        elseif name == "--static-dir" then
            cfg.static_dir = value()
        elseif name == "--broker" then
            cfg.broker = value()
        elseif name == "--auth-token" then
            cfg.auth_token = value()
            if cfg.auth_token == "" then fail(2, "--auth-token needs a non-empty token") end
        elseif name == "--metrics" then
            cfg.metrics = true
        elseif name == "--metrics-token" then
            cfg.metrics_token = value()
        elseif name == "--tls-cert" then
            cfg.tls_cert = value()
        elseif name == "--tls-key" then
            cfg.tls_key = value()
        elseif name == "--client-rate" or name == "--client-burst" then
            local v = value()
            if not v:match("^%d+$") then fail(2, "bad count '%s'", v) end
            cfg[name == "--client-rate" and "client_rate" or "client_burst"] = tonumber(v)
        elseif name == "--verbose" or name == "-v" then
            verbose = true
        else
            io.stderr:write(string.format(USAGE, PROG))
            fail(2, "unknown argument '%s'", a)
        end
        i = i + 1
    end
    return cfg
end

local function has_index(dir)
    local f = io.open(dir .. "/index.html", "r")
    if f then f:close() end
    return f ~= nil
end

-- ---- server ----------------------------------------------------------------------

local function make_server(cfg, static_dir)
    local server, err = wsnotify.new_server{
        host = cfg.host, port = cfg.port, path = "/ws",
        static_dir = static_dir,
        -- Browsers are not trusted to read: one that stops is closed when
        -- its queue is full (block mode would make every publish wait for
        -- it), and no publish waits for room.
        drop_on_backpressure = true, nonblocking = true,
        broker = cfg.broker,
        authenticate = cfg.auth_token ~= nil,
        metrics = cfg.metrics, metrics_token = cfg.metrics_token,
        tls_cert = cfg.tls_cert, tls_key = cfg.tls_key,
        client_rate = cfg.client_rate, client_burst = cfg.client_burst, -- nil: the default
        log_level = verbose and 4 or 3,
    }
    if not server then return nil, err end
    if cfg.auth_token then
        server:on_upgrade(require("chat_protocol").token_check(cfg.auth_token, log, verbose))
    end
    require("chat_protocol").attach(server, log, verbose)
    return server
end

-- ---- main ---------------------------------------------------------------------------

local function main(argv)
    local cfg = parse_args(argv)
    local static_dir = cfg.static_dir or (repo .. "/examples/chat")
    if not has_index(static_dir) then
        fail(2, "no index.html in %s; pass --static-dir path/to/examples/chat",
             static_dir)
    end
    local server, err = make_server(cfg, static_dir)
    if not server then fail(1, "%s", err) end
    wsnotify.catch_signals()
    local ok
    ok, err = server:start()
    if not ok then fail(1, "%s", err) end
    local scheme = cfg.tls_cert ~= "" and "https" or "http"
    log("INFO", "chat server on %s://%s:%d/ (WebSocket /ws, page from %s)",
        scheme, cfg.host, server.port, static_dir)
    if cfg.metrics then
        log("INFO", "metrics at %s://%s:%d/metrics%s", scheme, cfg.host, server.port,
            cfg.metrics_token ~= "" and " (bearer token required)" or "")
    end
    log("INFO", "open it in two browser tabs; Ctrl-C to stop")

    local stopped, sig = server:run()
    if stopped then
        log("INFO", "server stopped unexpectedly")
        server:close()
        return 1
    end
    server:shutdown(SHUTDOWN_TIMEOUT)
    server:close()
    log("INFO", "got %s, server gracefully stopped", sig)
    return 0
end

os.exit(main(arg))
