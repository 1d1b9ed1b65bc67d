-- What the specs share: a server on a free loopback port, and a small
-- WebSocket client over luasocket (RFC 6455, client side) that keeps the
-- server's handlers running while it waits, since both live on this one
-- Lua thread.
local socket = require "socket"
local wsnotify = require "wsnotify"

local H = {}

H.TIMEOUT = 5 -- seconds any single expectation may take

-- A started server on 127.0.0.1:0 with the options given.
function H.server(options)
    local o = {host = "127.0.0.1", port = 0, log_level = 0}
    for k, v in pairs(options or {}) do o[k] = v end
    local s = assert(wsnotify.new_server(o))
    assert(s:start())
    return s
end

-- Runs the server's handlers until cond() is true; false after timeout.
function H.pump(server, cond, timeout)
    local deadline = socket.gettime() + (timeout or H.TIMEOUT)
    while true do
        server:dispatch()
        if cond() then return true end
        if socket.gettime() > deadline then return false end
        server:wait(0.01)
    end
end

-- The envelope with its time replaced by "T", for exact comparisons.
function H.normalize(text)
    return (text:gsub('"time":"[^"]*"', '"time":"T"', 1))
end

-- ---- WebSocket client -------------------------------------------------------

local Client = {}
Client.__index = Client

local function u16(n) return string.char(math.floor(n / 256), n % 256) end

local function u64(n)
    local bytes = {}
    for i = 8, 1, -1 do
        bytes[i] = string.char(n % 256)
        n = math.floor(n / 256)
    end
    return table.concat(bytes)
end

-- connect(server, {path=, origin=, host=, protocol=, port=, rcvbuf=,
-- from = "127.0.0.2", headers = {name = value}, pump = true,
-- while_waiting = fn}) -> client | nil, status line, response headers
-- text, body. With pump, the server's handlers run while the answer is
-- awaited (an upgrade that waits for on_upgrade); while_waiting (implies
-- pump) runs there too (a front on this thread that must accept).
function H.connect(server, opts)
    opts = opts or {}
    local port = opts.port or server.port
    -- tcp4: socket.tcp() makes its fd only at connect, too late for options.
    local sock = assert(socket.tcp4())
    sock:settimeout(H.TIMEOUT)
    if opts.rcvbuf then -- a small window: a client that reads nothing fills up
        assert(sock:setoption("recv-buffer-size", opts.rcvbuf))
    end
    if opts.from then assert(sock:bind(opts.from, 0)) end
    assert(sock:connect("127.0.0.1", port))
    local lines = {
        "GET " .. (opts.path or "/ws") .. " HTTP/1.1",
        "Host: " .. (opts.host or ("127.0.0.1:" .. port)),
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    }
    if opts.origin then lines[#lines + 1] = "Origin: " .. opts.origin end
    if opts.protocol then
        lines[#lines + 1] = "Sec-WebSocket-Protocol: " .. opts.protocol
    end
    for k, v in pairs(opts.headers or {}) do lines[#lines + 1] = k .. ": " .. v end
    assert(sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n"))
    local waiting = opts.while_waiting
    if opts.pump or waiting then sock:settimeout(0) end
    local deadline = socket.gettime() + H.TIMEOUT
    local pending = ""
    local function line()
        while true do
            local l, err, part = sock:receive("*l", pending)
            pending = ""
            if l then return l end
            if err ~= "timeout" or socket.gettime() > deadline then return nil end
            pending = part or ""
            if waiting then waiting() end
            server:dispatch()
            socket.select({sock}, nil, 0.01)
        end
    end
    local status = line()
    local headers = {}
    while true do
        local l = line()
        if not l or l == "" then break end
        headers[#headers + 1] = l
    end
    if not status or not status:match("^HTTP/1%.1 101") then
        sock:settimeout(H.TIMEOUT)
        local body = ""
        local len = tonumber(table.concat(headers, "\n"):lower():match("content%-length:%s*(%d+)"))
        if len and len > 0 then body = sock:receive(len) or "" end
        sock:close()
        return nil, status, table.concat(headers, "\n"), body
    end
    local c = setmetatable({sock = sock, server = server, buf = ""}, Client)
    sock:settimeout(0)
    return c
end

-- Sends one frame. A zero masking key keeps the payload as it is: valid
-- (the key is the client's choice) and no bit operations on Lua 5.1.
function Client:send_frame(opcode, payload, fin)
    local b1 = (fin == false and 0 or 128) + opcode
    local n = #payload
    local head
    if n < 126 then
        head = string.char(b1, 128 + n)
    elseif n < 65536 then
        head = string.char(b1, 128 + 126) .. u16(n)
    else
        head = string.char(b1, 128 + 127) .. u64(n)
    end
    local data = head .. "\0\0\0\0" .. payload
    self.sock:settimeout(H.TIMEOUT)
    local i = 1
    while i <= #data do
        local sent, err, partial = self.sock:send(data, i)
        if not sent then
            if err ~= "timeout" then return nil, err end
            sent = partial
        end
        i = sent + 1
    end
    self.sock:settimeout(0)
    return true
end

function Client:send_text(text) return self:send_frame(1, text) end
function Client:send_binary(data) return self:send_frame(2, data) end

-- Sends a wsnotify envelope {type, channel, message, message_id}.
function Client:send_envelope(channel, message, message_id, mtype)
    local env = {type = mtype or "json", channel = channel, message = message,
                 message_id = message_id}
    return self:send_text(wsnotify.json_encode(env))
end

function Client:close(code, reason)
    if code then
        self:send_frame(8, u16(code) .. (reason or ""))
    end
    self.sock:close()
end

-- Reads n bytes, running the server's handlers while none arrive.
function Client:read(n, deadline)
    while #self.buf < n do
        local data, err, partial = self.sock:receive(n - #self.buf)
        data = data or partial
        if data and #data > 0 then
            self.buf = self.buf .. data
        elseif err == "closed" then
            return nil, "closed"
        else
            if socket.gettime() > deadline then return nil, "timeout" end
            self.server:dispatch()
            socket.select({self.sock}, nil, 0.005)
        end
    end
    local out = self.buf:sub(1, n)
    self.buf = self.buf:sub(n + 1)
    return out
end

-- recv([timeout]) -> kind ("text", "binary", "close"), payload[, code,
-- reason] | nil, "timeout" / "closed". Pings are answered; fragments
-- joined.
function Client:recv(timeout)
    local deadline = socket.gettime() + (timeout or H.TIMEOUT)
    local parts, first_op = {}, nil
    while true do
        local head, err = self:read(2, deadline)
        if not head then return nil, err end
        local b1, b2 = head:byte(1, 2)
        local fin, op = b1 >= 128, b1 % 16
        local n = b2 % 128
        if n == 126 then
            local ext = assert(self:read(2, deadline))
            n = ext:byte(1) * 256 + ext:byte(2)
        elseif n == 127 then
            local ext = assert(self:read(8, deadline))
            n = 0
            for i = 1, 8 do n = n * 256 + ext:byte(i) end
        end
        local payload = n > 0 and assert(self:read(n, deadline)) or ""
        if op == 9 then
            self:send_frame(10, payload)
        elseif op == 8 then
            local code = #payload >= 2 and payload:byte(1) * 256 + payload:byte(2) or nil
            return "close", payload, code, payload:sub(3)
        elseif op ~= 10 then
            if op ~= 0 then first_op = op end
            parts[#parts + 1] = payload
            if fin then
                return first_op == 2 and "binary" or "text", table.concat(parts)
            end
        end
    end
end

-- The next text frame, normalized; fails the spec on anything else.
function Client:expect_text(timeout)
    local kind, payload, code = self:recv(timeout)
    assert(kind == "text", "expected a text frame, got " .. tostring(kind)
           .. " " .. tostring(payload) .. " " .. tostring(code))
    return H.normalize(payload)
end

-- Nothing within seconds (a frame that should not come).
function Client:expect_nothing(seconds)
    local kind, payload = self:recv(seconds)
    assert(kind == nil and payload == "timeout",
           "expected nothing, got " .. tostring(kind) .. " " .. tostring(payload))
end

-- Reads until the close frame: returns code, reason, frames before it.
function Client:expect_close(timeout)
    local frames = {}
    while true do
        local kind, payload, code, reason = self:recv(timeout)
        assert(kind, "no close frame: " .. tostring(payload))
        if kind == "close" then return code, reason, frames end
        frames[#frames + 1] = payload
    end
end

-- A connected client and its server-side client object (after the
-- connect event ran).
function H.connect_pair(server, opts)
    local before = {}
    for _, id in ipairs(server:client_list()) do before[id] = true end
    local ws = assert(H.connect(server, opts))
    local found
    assert(H.pump(server, function()
        for _, id in ipairs(server:client_list()) do
            if not before[id] and server:get_client(id) then
                found = server:get_client(id)
                return true
            end
        end
        return false
    end), "the connect event did not arrive")
    return ws, found
end

-- GET path -> status code, body (plain HTTP/1.0 over a socket).
function H.http_get(port, path, headers)
    local sock = assert(socket.tcp())
    sock:settimeout(H.TIMEOUT)
    assert(sock:connect("127.0.0.1", port))
    local req = "GET " .. path .. " HTTP/1.0\r\nHost: 127.0.0.1:" .. port .. "\r\n"
    for k, v in pairs(headers or {}) do req = req .. k .. ": " .. v .. "\r\n" end
    assert(sock:send(req .. "\r\n"))
    local resp = sock:receive("*a") or ""
    sock:close()
    local status = tonumber(resp:match("^HTTP/1%.%d (%d+)"))
    return status, resp:match("\r\n\r\n(.*)$") or ""
end

return H
