-- The wsnotify engine inside nginx (lua-nginx-module): started in one
-- worker (ngx.worker.id() == 0) from init_worker, after the fork; its
-- events are pulled by a timer loop on that worker, so handlers run in
-- nginx's own thread and nothing blocks the event loop: dispatch() never
-- waits, publish never waits for room (a client without room is closed
-- at once: drop_on_backpressure).
--
-- Waiting: lua-nginx-module cannot wait on the engine's event fd, but a
-- cosocket can wait on a socket. The engine listens on a unix socket of
-- its own (the core's event_socket option, under nginx's prefix, tmp/)
-- and writes a byte to the loop's connection whenever events arrive; the
-- loop takes events until none is left, then reads (and so waits for) the
-- next byte. No polling: an idle engine costs its worker nothing but the
-- QUEUE_POLL wake-up below.
--
-- Connections: every worker's /ws handler (handoff_handler, in
-- ws_handoff.conf) gives the socket it accepted, with the request head it
-- read, to the engine over the engine's handoff_socket (the core's
-- wsn_handoff): from then on the engine's thread reads and writes that
-- socket itself, and no frame crosses nginx. The path is per engine, like
-- the event socket's, and published in the shared dict for every worker.
-- (run.sh --ws-proxy proxies /ws instead; the engine then binds none.)
--
-- Publishing from any worker: publish() in the engine's worker goes
-- straight to the engine; in the others it is queued in the shared dict
-- "wsnotify", which the loop takes each turn and, while idle, every
-- QUEUE_POLL (another worker has no way to wake this one's cosocket).
--
-- Reload and quit: the exiting worker's loop sees ngx.worker.exiting(),
-- shuts its engine down (clients get 1001 and reconnect), and the new
-- worker 0 starts its engine on the same port, retrying with backoff
-- while the old one still holds it.
--
-- A turn runs handlers for at most TURN_TIME, then yields: until the
-- loop yields, nginx's thread moves no byte for any other connection of
-- this worker: new /ws connections wait to be handed over (and with
-- --ws-proxy every frame of the proxied clients waits).
local wsnotify = require "wsnotify"
local protocol = require "chat_protocol"

local M = {}

local ENGINE_WORKER = 0
local QUEUE = "publish"
local TURN_EVENTS = 16    -- events dispatched between two looks at the clock
local TURN_TIME = 0.002   -- seconds of handlers before nginx's thread is given back
-- While idle the loop also wakes this often, for other workers' queued
-- publishes and to notice that the worker is exiting.
local QUEUE_POLL = 0.1
local QUEUE_BATCH = 1000  -- queued publishes taken per turn
local SHUTDOWN_TIMEOUT = 2
local HANDOFF_KEY = "handoff_path" -- in the shared dict: the running engine's
-- A handoff that finds the engine's queue full (WSN_EAGAIN: it holds
-- net.unix.max_dgram_qlen sockets, 10 by default) or no engine (starting,
-- or replaced by a reload) is tried again after 1 ms, doubling up to
-- 16 ms, each wait drawn between half and 1.5 times that so that a burst
-- of connections does not retry in step; for 1 s in all, then the client
-- gets 503. (Doubling without a cap left waits of 0.25 and 0.5 s at the
-- end: in a burst of 1,000 connections 4-11% got 503 while the queue had
-- room most of that time.)
local HANDOFF_FIRST_WAIT = 0.001
local HANDOFF_MAX_WAIT = 0.016
local HANDOFF_PATIENCE = 1.0
local HANDOFF_MAX_HEAD = 16384 -- what one handoff carries (WSN_HANDOFF_MAX_HEAD)

local server
local config
local event_path -- the engine's event socket
local handoff_path -- the engine's handoff socket, while this worker publishes it

local LEVELS = {INFO = ngx.NOTICE, DEBUG = ngx.DEBUG, WARN = ngx.WARN,
                ERROR = ngx.ERR}

local function log(level, fmt, ...)
    ngx.log(LEVELS[level] or ngx.INFO, "chat: ", string.format(fmt, ...))
end

local function logger(level, line, source)
    ngx.log(LEVELS[level:upper()] or ngx.ERR, source or "wsnotify", ": ", line)
end

-- A queued publish is "<length of channel>:" .. channel .. JSON text.
local function encode_item(channel, json)
    return #channel .. ":" .. channel .. json
end

local function drain_queue(shared)
    local n = 0
    while n < QUEUE_BATCH do
        local item = shared:lpop(QUEUE)
        if not item then break end
        n = n + 1
        local len, rest = item:match("^(%d+):()")
        if len then
            local stop = rest + tonumber(len)
            local ok, err, code = server:publish(item:sub(rest, stop - 1),
                                                 item:sub(stop))
            if code == "WSN_EAGAIN" then
                -- No room now: it goes back first in line for the next turn.
                shared:lpush(QUEUE, item)
                return n - 1
            end
            if not ok then log("INFO", "queued publish failed: %s", err) end
        end
    end
    return n
end

-- Before the engine stops: workers then answer 503 at once rather than
-- hand sockets to an engine that refuses them, and a reload's new engine
-- (which cannot start before this one leaves the port) publishes its own.
local function unpublish_handoff()
    if not handoff_path then return end
    local shared = ngx.shared.wsnotify
    if shared:get(HANDOFF_KEY) == handoff_path then shared:delete(HANDOFF_KEY) end
    handoff_path = nil
end

local function stop_engine()
    if not server then return end
    local s = server
    server = nil
    unpublish_handoff()
    s:shutdown(SHUTDOWN_TIMEOUT)
    s:close()
    log("INFO", "engine stopped (worker exiting)")
end

-- The cosocket the engine writes a byte to when events arrive.
local function connect_events(path)
    local sock = ngx.socket.tcp()
    sock:settimeout(QUEUE_POLL * 1000)
    local ok, err = sock:connect("unix:" .. path)
    if not ok then return nil, err end
    return sock
end

local function loop(premature)
    if premature then return stop_engine() end
    local shared = ngx.shared.wsnotify
    -- A cosocket belongs to the timer that made it: made here.
    local events, err = connect_events(event_path)
    if not events then
        log("ERROR", "engine stopped: its event socket %s: %s", event_path, err)
        return stop_engine()
    end
    while server do
        if ngx.worker.exiting() then
            if events then events:close() end
            return stop_engine()
        end
        ngx.update_time()
        local start, n, k = ngx.now(), 0, 0
        repeat
            k = server:dispatch(TURN_EVENTS)
            n = n + k
            ngx.update_time()
        until k < TURN_EVENTS or ngx.now() - start >= TURN_TIME
        local queued = drain_queue(shared)
        n = n + queued
        if server.stopped then
            log("INFO", "engine stopped")
            unpublish_handoff()
            if events then events:close() end
            server:close()
            server = nil
            return
        end
        if k >= TURN_EVENTS or queued >= QUEUE_BATCH then
            -- The turn ran out of time with more waiting: yield to nginx's
            -- event loop (handoffs, pages, the proxy with --ws-proxy) and
            -- come straight back. Only then: without the delayed events
            -- patch (Debian's nginx) every ngx.sleep(0) logs a warning,
            -- one per event at a chat's pace when this yielded after every
            -- turn.
            ngx.sleep(0)
        elseif events then
            -- Nothing left: wait for the engine's next byte (any number
            -- may have come; one read takes them all; after a turn that
            -- took events, their byte is usually there and the read
            -- returns at once, so the next turn finds what came since).
            local _, rerr = events:receiveany(64)
            if rerr and rerr ~= "timeout" then
                -- The engine closed it (stopping: the next turn sees that)
                -- or the socket failed (connected again below).
                events:close()
                events = nil
            end
        else
            events, err = connect_events(event_path)
            if not events then
                log("ERROR", "event socket %s: %s", event_path, err)
                ngx.sleep(QUEUE_POLL)
            end
        end
    end
    if events then events:close() end
end

local function start_engine(premature, attempt)
    if premature or ngx.worker.exiting() then return end
    -- One path per engine: after a reload the old worker's engine still
    -- holds its own while the new one starts.
    local dir = config.event_socket_dir or (ngx.config.prefix() .. "tmp")
    local event_socket = string.format("%s/wsnotify-%d.sock", dir, ngx.worker.pid())
    local handoff_socket = config.handoff and
        string.format("%s/wsnotify-handoff-%d.sock", dir, ngx.worker.pid()) or ""
    local s, err = wsnotify.new_server{
        host = "127.0.0.1", port = config.engine_port, path = "/ws",
        event_socket = event_socket, handoff_socket = handoff_socket,
        -- Nothing may block the worker: publishes never wait for room
        -- (WSN_EAGAIN instead), and a browser too slow to keep up is
        -- closed rather than holding up the others.
        nonblocking = true, drop_on_backpressure = true,
        broker = config.broker or "",
        authenticate = config.auth_token ~= nil,
        metrics = config.metrics == true, metrics_token = config.metrics_token or "",
        client_rate = config.client_rate, client_burst = config.client_burst, -- nil: default
        log_level = config.verbose and 4 or 3, logger = logger,
    }
    if s then
        protocol.attach(s, log, config.verbose)
        if config.auth_token then
            s:on_upgrade(protocol.token_check(config.auth_token, log, config.verbose))
        end
        local ok, serr, code = s:start()
        if ok then
            server = s
            event_path = event_socket
            if handoff_socket ~= "" then
                handoff_path = handoff_socket
                ngx.shared.wsnotify:set(HANDOFF_KEY, handoff_socket)
            end
            log("INFO", "engine on 127.0.0.1:%d in worker %d (pid %d)",
                s.port, ngx.worker.id(), ngx.worker.pid())
            assert(ngx.timer.at(0, loop))
            return
        end
        s:close()
        err = serr
        -- After a reload the old worker may still hold the port.
        if code == "WSN_EIO" and attempt < 100 then
            assert(ngx.timer.at(math.min(0.05 * 2 ^ math.min(attempt, 4), 1),
                                start_engine, attempt + 1))
            return
        end
    end
    log("ERROR", "engine did not start: %s", err)
end

function M.init_worker(cfg)
    config = cfg
    if ngx.worker.id() ~= ENGINE_WORKER then return end
    assert(ngx.timer.at(0, start_engine, 0))
end

-- ---- handoff -------------------------------------------------------------

-- The descriptor of the downstream connection. lua-nginx-module exports
-- ngx_http_lua_ffi_socket_tcp_hack_fd (what lua-resty-core's
-- tcpsock:setfd uses); with fd -1 it changes nothing and returns the
-- socket's descriptor.
local conn_fd
do
    local ffi
    local errbuf, errlen
    conn_fd = function(sock)
        if not ffi then
            ffi = require "ffi"
            require "resty.core.socket" -- declares the upstream type
            -- Declared once per Lua VM; a second declaration would raise.
            pcall(ffi.cdef, [[
int ngx_http_lua_ffi_socket_tcp_hack_fd(ngx_http_lua_socket_tcp_upstream_t *u,
                                        int fd, unsigned char *errstr,
                                        size_t *errlen);
]])
            errbuf = ffi.new("unsigned char[256]")
            errlen = ffi.new("size_t[1]")
        end
        errlen[0] = 256
        local fd = ffi.C.ngx_http_lua_ffi_socket_tcp_hack_fd(sock[1], -1, errbuf, errlen)
        if fd < 0 then return nil, ffi.string(errbuf, errlen[0]) end
        return tonumber(fd)
    end
end

-- The raw socket is the client's from here on: an answer is written on it.
local function refuse(sock, status, text)
    sock:send(string.format("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
        .. "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
        status, text, #text + 1, text .. "\n"))
    return ngx.exit(444)
end

-- location = /ws (ws_handoff.conf), in every worker: gives the connection
-- to the engine, then lets go of it without a byte written (444: nginx
-- closes its descriptor; the engine holds the socket).
function M.handoff_handler()
    local head = ngx.req.raw_header()
    local sock, err = ngx.req.socket(true)
    if not sock then
        log("ERROR", "handoff: no raw socket: %s", err)
        return ngx.exit(500)
    end
    local fd, ferr = conn_fd(sock)
    if not fd then
        log("ERROR", "handoff: no descriptor: %s", ferr)
        return refuse(sock, 500, "Internal Server Error")
    end
    if #head >= HANDOFF_MAX_HEAD then
        return refuse(sock, 431, "Request Header Fields Too Large")
    end
    -- What the client sent after its head (it should wait for the 101,
    -- but need not: frames right behind the head) may sit in nginx's
    -- buffer already, out of the engine's reach: the raw socket returns
    -- that first. With none there this waits 1 ms.
    sock:settimeout(1)
    local more, rerr = sock:receiveany(HANDOFF_MAX_HEAD - #head)
    if more then
        head = head .. more
    elseif rerr ~= "timeout" then
        return ngx.exit(444) -- the client is gone
    end
    local shared = ngx.shared.wsnotify
    local wait = HANDOFF_FIRST_WAIT
    ngx.update_time()
    local give_up = ngx.now() + HANDOFF_PATIENCE
    local code
    while true do
        local path = shared:get(HANDOFF_KEY)
        if path then
            local ok, herr
            ok, herr, code = wsnotify.handoff(path, fd, head)
            if ok then return ngx.exit(444) end
            if code ~= "WSN_EAGAIN" and code ~= "WSN_ECLOSED" then
                log("ERROR", "handoff: %s", herr)
                return refuse(sock, 500, "Internal Server Error")
            end
        end
        if ngx.now() >= give_up then break end
        ngx.sleep(wait * (0.5 + math.random()))
        wait = math.min(wait * 2, HANDOFF_MAX_WAIT)
    end
    log("WARN", "handoff: %s, client refused with 503",
        code == "WSN_EAGAIN" and "the engine's queue stayed full" or "no engine")
    return refuse(sock, 503, "Service Unavailable")
end

-- publish(channel, json_text) from any worker: true | nil, err
function M.publish(channel, json)
    if server then return server:publish(channel, json) end
    local ok, err = ngx.shared.wsnotify:rpush(QUEUE, encode_item(channel, json))
    if not ok then return nil, "queue: " .. tostring(err) end
    return true
end

-- POST /publish?channel=NAME, body: JSON text.
function M.publish_handler()
    ngx.header["X-Worker"] = tostring(ngx.worker.pid())
    if ngx.req.get_method() ~= "POST" then return ngx.exit(405) end
    local channel = ngx.var.arg_channel
    if not channel or channel == "" then return ngx.exit(400) end
    channel = ngx.unescape_uri(channel)
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then return ngx.exit(400) end
    local ok, err, code = M.publish(channel, body)
    if not ok then
        -- No room (a nonblocking publish): the caller may retry.
        local status = code == "WSN_EAGAIN" and 503 or 400
        ngx.status = status
        ngx.say(err)
        return ngx.exit(status)
    end
    ngx.status = 202
    ngx.say("queued")
end

return M
