-- wsnotify: a real-time WebSocket notification engine, from Lua.
--
--   local wsnotify = require "wsnotify"
--   local server = assert(wsnotify.new_server{port = 8080, static_dir = "www"})
--   server:on_message(function(client, msg) ... end)
--   assert(server:start())
--   server:run()
--
-- The C core (libwsnotify) does the networking on threads of its own; this
-- module pulls its events and runs the handlers on the Lua thread that
-- calls dispatch() or run(), so Lua code never runs on a core thread. The
-- module is the Lua C module wsnotify.core (one build per Lua ABI: 5.1 and
-- LuaJIT, 5.4) and this file, which holds what is Lua: handlers, messages,
-- the loop. Failures return nil, message, code ("WSN_EGONE"); misuse
-- (arguments of the wrong type, unknown options) raises.

local core = require "wsnotify.core"

local M = {}

local version_number, version_string = core.version()
M.version = version_string          -- of the loaded libwsnotify
M.version_number = version_number   -- MAJOR*10000 + MINOR*100 + PATCH

M.null = core.null                  -- JSON null
M.empty_array = core.empty_array    -- encodes as []
M.array_mt = core.array_mt          -- setmetatable({}, array_mt) -> []
M.json_encode = core.json_encode
M.json_decode = core.json_decode
M.json_get_string = core.json_get_string
M.catch_signals = core.catch_signals
M.caught_signal = core.caught_signal

-- handoff(path, fd, head) -> true | nil, err, code: gives the TCP socket
-- fd, whose request head (at least) this process has read, to the engine
-- whose handoff_socket option is path; needs no server here. On true the
-- engine serves the connection as if it had accepted it (path, Origin,
-- authentication, limits, the real peer address): close your descriptor
-- without writing to it. Codes: "WSN_ECLOSED" (no engine at path),
-- "WSN_EAGAIN" (its queue is full: retry soon, or answer 503),
-- "WSN_ELIMIT" (head over 16384 bytes), "WSN_EINVAL", "WSN_EIO"; the fd
-- is still yours then. Arguments of the wrong type raise.
M.handoff = core.handoff

-- Every option the core knows: {name=, type=, default=, min=, max=}.
M.options = core.options

function M.option_names()
    local names = {}
    for i, o in ipairs(core.options()) do names[i] = o.name end
    return names
end

-- The core's text for a code, by number or by name ("WSN_EGONE").
local code_numbers = {}
for n = 0, -64, -1 do
    local name = core.err_name(n)
    if name:match("^WSN_") then code_numbers[name] = n end
end

function M.strerror(code)
    if type(code) == "string" then code = code_numbers[code] or 1 end
    return core.strerror(code)
end

local ECLOSED = code_numbers.WSN_ECLOSED
local WAIT_SLICE = 0.25 -- run() checks for signals this often (seconds)

-- logger(level, line, source): level "error", "warn", "info" or "debug";
-- source "wsnotify.core" (the engine's own lines, taken from its queue on
-- this thread) or "wsnotify" (this module: a failing handler).
local function default_logger(level, line, source)
    io.stderr:write(os.date("%Y-%m-%d %H:%M:%S"), " ",
                    string.format("%-5s", level:upper()), " ",
                    source or "wsnotify", ": ", line, "\n")
end

local LOG_BATCH = 256 -- log lines taken per dispatch()

-- ---- messages -------------------------------------------------------------

-- A message's decoded value is made on first use: a handler that forwards
-- msg.raw or reads one field with json_get_string never pays for it.
local message_mt = {
    __index = function(msg, key)
        if key ~= "message" then return nil end
        local value = msg.raw
        if msg.type == "json" then
            if value == "" then
                value = nil
            else
                local v = core.json_decode(value)
                if v ~= nil then value = v end
            end
        end
        rawset(msg, "message", value)
        return value
    end,
}
-- publish(channel, msg) of a JSON message forwards its payload as the core
-- checked it (WSN_PUBLISH_TRUSTED_JSON: no second check) while msg.raw is
-- still the text kept under CORE_RAW; a replaced msg.raw is checked.
core.set_message_mt(message_mt)
local CORE_RAW = core.message_raw_key

-- ---- server -----------------------------------------------------------------

-- Hands the engine's queued log lines to the logger.
local function drain_logs(self)
    local s, logger = self._s, self._logger
    for _ = 1, LOG_BATCH do
        local level, line = s:next_log()
        if not level then return end
        local ok, err = pcall(logger, level, line, "wsnotify.core")
        if not ok then default_logger("error", tostring(err) .. " (in the logger)") end
    end
end

local Server = {}

local fields = {
    port = function(self) return self._s:port() end,
    started = function(self) return self._started end,
    stopped = function(self) return self._stopped end,
}

local server_mt = {
    __index = function(self, key)
        local f = fields[key]
        if f then return f(self) end
        return Server[key]
    end,
    __tostring = function(self)
        return string.format("wsnotify.server(%s)", tostring(self._s))
    end,
}
-- Lua 5.4: `local server <close> = ...` shuts it down at the end of scope.
server_mt.__close = function(self) self:close() end

-- new_server{host=, port=, ..., every core option by its name, durations
-- in seconds; and two of this module:
--   logger = function(level, line, source)  (default: stderr)
--   nonblocking = true: publishes never wait for room; they return nil,
--     err, "WSN_EAGAIN" instead (nothing queued; retry when room_fd() is
--     readable). For hosts whose thread must never block (nginx).
-- } -> server | nil, err, code
function M.new_server(options)
    if options ~= nil and type(options) ~= "table" then
        error("new_server: options must be a table", 2)
    end
    local core_options, logger, nonblocking = {}, default_logger, false
    for k, v in pairs(options or {}) do
        if k == "logger" then
            if type(v) ~= "function" then
                error("new_server: logger must be a function", 2)
            end
            logger = v
        elseif k == "events_on_io_thread" then
            -- Handlers would run on the engine's thread, where no Lua may.
            error("new_server: events_on_io_thread is not available from Lua "
                  .. "(handlers run on the thread that calls dispatch)", 2)
        elseif k == "nonblocking" then
            if type(v) ~= "boolean" then
                error("new_server: nonblocking must be a boolean", 2)
            end
            nonblocking = v
        else
            core_options[k] = v
        end
    end
    local s, err, code = core.new_server(core_options, nonblocking)
    if not s then return nil, err, code end
    local write_wait = core_options.write_wait
    if write_wait == nil then
        for _, o in ipairs(core.options()) do
            if o.name == "write_wait" then write_wait = o.default end
        end
    end
    return setmetatable({
        _s = s,
        _authenticate = core_options.authenticate == true,
        _clients = {},    -- id -> client object, connect to disconnect
        _batch = {count = 0, pos = 0}, -- see dispatch
        _handlers = {},
        _logger = logger,
        _write_wait = write_wait,
        _started = false,
        _stopped = false,
    }, server_mt)
end

function Server:start()
    if self._authenticate and not self._handlers.upgrade then
        error("start: authenticate = true needs an on_upgrade handler", 2)
    end
    local ok, err, code = self._s:start()
    if ok then self._started = true end
    return ok, err, code
end

-- shutdown([timeout seconds, default write_wait]): delivers what was
-- accepted, closes every client with 1001, stops, then runs the handlers
-- of the events left (the remaining disconnects). Returns true, or nil,
-- err, "WSN_ETIMEDOUT" when clients had to be cut.
function Server:shutdown(timeout)
    if self._s:closed() then return true end
    local ok, err, code = self._s:shutdown(timeout or self._write_wait)
    if self._started then
        -- The STOPPED event is queued once the core has stopped; bounded
        -- in case a core bug ever withholds it.
        for _ = 1, 40 do
            if self._stopped then break end
            if self._s:wait(WAIT_SLICE) == ECLOSED then
                self._stopped = true
                break
            end
            self:dispatch()
        end
    end
    self._stopped = true
    return ok, err, code
end

-- close(): shutdown() if needed, then frees the engine (also what garbage
-- collection does). Client objects stay readable.
function Server:close(timeout)
    if self._s:closed() then return true end
    local ok, err, code = true, nil, nil
    if self._started and not self._stopped then
        ok, err, code = self:shutdown(timeout)
    end
    drain_logs(self)
    self._s:close()
    return ok, err, code
end

-- ---- handlers -----------------------------------------------------------------

function Server:on_message(fn) self._handlers.message = fn; return fn end
function Server:on_connect(fn) self._handlers.connect = fn; return fn end
function Server:on_disconnect(fn) self._handlers.disconnect = fn; return fn end
-- on_broker(function(state, reason)): the broker's state changed ("up",
-- "down", "connecting"; reason "" when up). Servers with broker= only.
function Server:on_broker(fn) self._handlers.broker = fn; return fn end

-- on_upgrade(function(req)): with authenticate = true, every WebSocket
-- upgrade waits for this answer. req has id, path, query (raw), peer,
-- headers (names lower-cased, repeats joined with ", "), req:query_arg(name),
-- req:bearer_token(). The function returns true / false, {status=, body=}
-- to refuse, {metadata=, channels=, expires_at=} to accept (expires_at in
-- Unix seconds: then closed with 4001), or nil and answers later with
-- req:accept{...} / req:reject(status, body) (within auth_timeout, else
-- 503). One that raises refuses with 500.
function Server:on_upgrade(fn) self._handlers.upgrade = fn; return fn end

local function percent_decode(s)
    s = s:gsub("+", " ")
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local upgrade_mt = {}
upgrade_mt.__index = upgrade_mt

function upgrade_mt:header(name) return self.headers[name:lower()] end

function upgrade_mt:query_arg(name)
    for pair in (self.query .. "&"):gmatch("([^&]*)&") do
        local k, v = pair:match("^([^=]*)=?(.*)$")
        if percent_decode(k) == name then return percent_decode(v) end
    end
    return nil
end

function upgrade_mt:bearer_token()
    local auth = self.headers.authorization
    return auth and auth:match("^[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)") or nil
end

function upgrade_mt:accept(answer)
    answer = answer or {}
    self.answered = true
    local meta = answer.metadata
    if meta ~= nil and next(meta) == nil then meta = nil end -- {} would be []
    return self._server._s:accept_upgrade(self.id, meta, answer.channels, answer.expires_at)
end

function upgrade_mt:reject(status, body)
    self.answered = true
    return self._server._s:reject_upgrade(self.id, status or 401, body)
end

local function parse_headers(lines)
    local headers = {}
    for line in (lines .. "\r\n"):gmatch("(.-)\r\n") do
        local name, value = line:match("^([^:]+):%s*(.-)%s*$")
        if name then
            name = name:lower()
            headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
        end
    end
    return headers
end

local traceback = debug.traceback

-- Lua 5.1's xpcall passes no arguments to the function (LuaJIT's and
-- 5.2+'s do): a closure there, the direct call elsewhere.
local xpcall_passes_args = select(2, xpcall(function(a) return a end,
                                            traceback, true)) == true

local function call(fn, a, b)
    if xpcall_passes_args then return xpcall(fn, traceback, a, b) end
    return xpcall(function() return fn(a, b) end, traceback)
end

local function run_handler(self, what, fn, a, b)
    local ok, err = call(fn, a, b)
    if not ok then
        -- A failing handler is logged and the server goes on.
        local logged, lerr = pcall(self._logger, "error",
                                   what .. " handler failed: " .. tostring(err),
                                   "wsnotify")
        if not logged then
            default_logger("error", tostring(lerr) .. " (in the logger) after: "
                           .. tostring(err))
        end
    end
end

-- Events come from the core in batches of up to EVENT_BATCH, one C call
-- each (take_events: one wsn_server_take_events), as 8 fields per event
-- in self._batch; the position lives there, not in the loop, so a handler
-- that dispatches again goes on with the same batch.
local EVENT_BATCH = 256
local FIELDS = 8

-- dispatch([max]): runs the handlers of up to max queued events (default:
-- all queued now) on this thread, without waiting, and passes the
-- engine's log lines to the logger. Returns the number of events taken.
function Server:dispatch(max)
    local s, clients, handlers = self._s, self._clients, self._handlers
    if s:closed() then return 0 end
    drain_logs(self)
    if self._stopped then return 0 end
    local b = self._batch
    local n = 0
    while max == nil or max <= 0 or n < max do
        local i = b.pos
        if i >= b.count then
            -- never more than max asks for: a taken event no longer shows
            -- on the event fd, so none may be left over
            local want = EVENT_BATCH
            if max ~= nil and max > 0 and max - n < want then want = max - n end
            local got, err = s:take_events(clients, b, want)
            if not got then
                if got == false then self._stopped = true
                elseif err ~= nil then error(err, 2) end -- a core failure
                break
            end
            b.count, b.pos, i = got, 0, 0
        end
        b.pos = i + 1
        n = n + 1
        local o = i * FIELDS
        local kind, client, cid = b[o + 1], b[o + 2], b[o + 3]
        if kind == "message" then
            local fn = handlers.message
            if fn then
                run_handler(self, "message", fn, client, setmetatable({
                    type = b[o + 4], channel = b[o + 5], raw = b[o + 6],
                    message_id = b[o + 7], reply_to_id = b[o + 8], client_id = cid,
                    [CORE_RAW] = b[o + 6],
                }, message_mt))
            end
        elseif kind == "connect" then
            local fn = handlers.connect
            if fn then run_handler(self, "connect", fn, client) end
        elseif kind == "disconnect" then
            local fn = handlers.disconnect
            if fn then run_handler(self, "disconnect", fn, client) end
            clients[cid] = nil
        elseif kind == "upgrade" then
            self:_upgrade(setmetatable({
                _server = self, id = b[o + 4], path = b[o + 5], query = b[o + 6],
                peer = b[o + 7], headers = parse_headers(b[o + 8]), answered = false,
            }, upgrade_mt))
        elseif kind == "broker" then
            local fn = handlers.broker
            if fn then run_handler(self, "broker", fn, b[o + 4], b[o + 5]) end
        elseif kind == "stopped" then
            self._stopped = true
            break
        end
    end
    -- Log lines queued while events were (they did not turn the event fd,
    -- which events kept readable) would keep it readable once the events
    -- are taken, and a host that waits for the fd (or the event socket)
    -- to turn again would not hear of the next event: they go now too.
    drain_logs(self)
    return n
end

-- The handler's answer; a request that stopped waiting (timed out) is
-- not the handler's error.
function Server:_upgrade(req)
    local fn = self._handlers.upgrade
    local ok, res = call(fn or function() return {status = 503, body = "no upgrade handler"} end, req)
    if not ok then
        pcall(self._logger, "error", "upgrade handler failed: " .. tostring(res), "wsnotify")
        res = {status = 500, body = "authentication failed"}
    end
    if req.answered or res == nil then return end
    local done, err, code
    if res == true then done, err, code = req:accept()
    elseif res == false then done, err, code = req:reject(401, "unauthorized")
    elseif type(res) == "table" and res.status then done, err, code = req:reject(res.status, res.body)
    elseif type(res) == "table" then done, err, code = req:accept(res)
    else
        done, err = nil, "an upgrade handler returns true, false, {status=, body=} or "
            .. "{metadata=, channels=, expires_at=}, not " .. tostring(res)
    end
    if not done and code ~= "WSN_EGONE" then
        pcall(self._logger, "error", "upgrade " .. tostring(req.id) .. ": " .. tostring(err), "wsnotify")
        if not req._refused then
            req._refused = true
            self._s:reject_upgrade(req.id, 500, "authentication failed")
        end
    end
end

-- wait([timeout seconds, nil = forever]) -> true (events queued), false
-- (timeout) | nil, err, "WSN_ECLOSED" once stopped.
function Server:wait(timeout)
    local rc = self._s:wait(timeout)
    if rc >= 0 then return rc > 0 end
    return nil, "wait: " .. core.strerror(rc) .. " [" .. core.err_name(rc)
        .. "]", core.err_name(rc)
end

-- run(): starts if needed, then waits and dispatches until the server
-- stops (true). After wsnotify.catch_signals(), a SIGINT or SIGTERM ends
-- it early with false, "SIGINT"/"SIGTERM": the caller decides (shutdown).
function Server:run()
    if not self._started then
        local ok, err, code = self:start()
        if not ok then return nil, err, code end
    end
    local s = self._s
    while not self._stopped do
        local sig = core.caught_signal()
        if sig then return false, sig end
        local rc = s:wait(WAIT_SLICE)
        if rc == ECLOSED then
            self._stopped = true
        elseif rc > 0 then
            self:dispatch()
        end
    end
    return true
end

-- Readable while events or log lines are queued: for other event loops,
-- which then call dispatch().
function Server:event_fd() return self._s:event_fd() end
-- Readable while a nonblocking publish would find room.
function Server:room_fd() return self._s:room_fd() end
-- Engine log lines lost because its queue was full.
function Server:logs_dropped() return self._s:logs_dropped() end

-- ---- clients, pub/sub -----------------------------------------------------------

-- A client object, or an id of a connected client.
local function client_arg(self, client)
    if type(client) == "string" then
        return self._clients[client]
    end
    return client
end

local function gone(what, client)
    return nil, what .. ": no connected client " .. tostring(client)
        .. ": " .. core.strerror(code_numbers.WSN_EGONE) .. " [WSN_EGONE]",
        "WSN_EGONE"
end

function Server:get_client(id) return self._clients[id] end

function Server:subscribe(client, channel)
    local c = client_arg(self, client)
    if not c then return gone("subscribe", client) end
    return self._s:subscribe(c, channel)
end

function Server:unsubscribe(client, channel)
    local c = client_arg(self, client)
    if not c then return gone("unsubscribe", client) end
    return self._s:unsubscribe(c, channel)
end

-- publish(channel, value): a Lua value encoded to JSON (see json_encode),
-- or a string taken as JSON text as it is.
function Server:publish(channel, value)
    return self._s:publish(channel, value)
end

-- publish_with_type(channel, value, [type "json"|"text"|"binary"],
--                   [message_id], [reply_to_id])
function Server:publish_with_type(channel, value, mtype, message_id,
                                  reply_to_id)
    return self._s:publish_with_type(channel, value, mtype, message_id,
                                     reply_to_id)
end

-- publish_to_client(client, channel, value, [type], [message_id],
--                   [reply_to_id]); channel may be "".
function Server:publish_to_client(client, channel, value, mtype, message_id,
                                  reply_to_id)
    local c = client_arg(self, client)
    if not c then return gone("publish_to_client", client) end
    return self._s:publish_to_client(c, channel, value, mtype, message_id,
                                     reply_to_id)
end

-- publish_to_client_id(client_id, channel, value, [type], [message_id],
--                      [reply_to_id]): to the client with this id on any
-- server of the cluster (with broker=); nil, err, "WSN_EBROKER" when it is
-- another server's and the broker is down.
function Server:publish_to_client_id(client_id, channel, value, mtype,
                                     message_id, reply_to_id)
    return self._s:publish_to_client_id(client_id, channel, value, mtype,
                                        message_id, reply_to_id)
end

-- broker_state() -> {state = "none"|"connecting"|"up"|"down", reason,
-- server_id, sent, refused, unconfirmed, received, ignored, dropped,
-- reconnects} (docs/scale-out.md).
function Server:broker_state() return self._s:broker_state() end

-- metrics() -> the core's counters and gauges (docs/production.md): a
-- table by the C field names (connections, connections_accepted,
-- connections_refused = {origin = n, ...}, messages_received = {json = n,
-- text = n, binary = n}, deliveries, queued, publish_refused_again, ...),
-- reads_paused a boolean, broker_state a name. metrics_text() -> the same
-- in the Prometheus text format (what GET /metrics serves, metrics = true).
function Server:metrics() return self._s:metrics() end
function Server:metrics_text() return self._s:metrics_text() end
-- reload_tls() -> true | nil, err, code: reads the tls_cert and tls_key
-- files again; connections made from then on get the new certificate, open
-- ones keep theirs. A file that cannot be read or does not hold the
-- certificate and its key: nil, err naming it, "WSN_EIO" (the previous
-- certificate stays); no TLS: "WSN_EINVAL".
function Server:reload_tls() return self._s:reload_tls() end

-- send_raw(client, data, [type "text"|"binary"]): one frame, no envelope.
function Server:send_raw(client, data, mtype)
    local c = client_arg(self, client)
    if not c then return gone("send_raw", client) end
    return self._s:send_raw(c, data, mtype)
end

-- Batching: ttl in seconds.
function Server:publish_wait(channel, value, ident, name, ttl)
    return self._s:publish_wait(channel, value, ident, name, ttl)
end

function Server:publish_wait_with_type(channel, value, mtype, ident, name, ttl)
    return self._s:publish_wait_with_type(channel, value, mtype, ident, name,
                                          ttl)
end

function Server:publish_wait_string(channel, text, ident, name, ttl)
    return self._s:publish_wait_string(channel, text, ident, name, ttl)
end

function Server:cancel_pending_messages(channel, ident)
    return self._s:cancel_pending_messages(channel, ident)
end

function Server:pending_batches() return self._s:pending_batches() end
function Server:connected_clients() return self._s:connected_clients() end
function Server:client_list() return self._s:client_list() end

M.Server = Server
return M
