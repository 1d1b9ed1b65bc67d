-- wsnotify.handoff and the handoff_socket option: a front (here a
-- luasocket listener on this thread, as an nginx worker would be one)
-- accepts a connection, reads its request head and gives the socket to
-- the engine, which serves it as one it accepted itself.
local H = require "spec.helper"
local socket = require "socket"
local wsnotify = require "wsnotify"

local MAX_HEAD = 16384

-- A unix socket path of our own: next to a temp file we made.
local function temp_path()
    local base = os.tmpname()
    return base .. ".handoff", base
end

-- The front: step() accepts what is waiting, reads heads without
-- blocking and hands each complete one to the engine at path, then
-- closes its descriptor (as nginx does). results: true or the code.
local function front(path)
    local l = assert(socket.bind("127.0.0.1", 0))
    l:settimeout(0)
    local _, port = l:getsockname()
    local f = {port = tonumber(port), results = {}}
    local reading = {}
    function f.step()
        local c = l:accept()
        if c then
            c:settimeout(0)
            reading[#reading + 1] = {sock = c, head = ""}
        end
        for i = #reading, 1, -1 do
            local r = reading[i]
            local data, err, partial = r.sock:receive(MAX_HEAD)
            r.head = r.head .. (data or partial or "")
            if r.head:find("\r\n\r\n", 1, true) then
                table.remove(reading, i)
                local ok, _, code = wsnotify.handoff(path, r.sock:getfd(), r.head)
                f.results[#f.results + 1] = ok or code
                r.sock:close()
            elseif err == "closed" then
                table.remove(reading, i)
                r.sock:close()
            end
        end
    end
    function f.close() l:close() end
    return f
end

local function exists(path)
    -- Opening a socket file fails with ENXIO: it is there, not a file.
    local fh, err = io.open(path, "r")
    if fh then
        fh:close()
        return true
    end
    return not err:match("No such file")
end

describe("handoff", function()
    it("raises on arguments of the wrong type", function()
        assert.has_error(function() wsnotify.handoff(1, 3, "GET / HTTP/1.1\r\n\r\n") end)
        assert.has_error(function() wsnotify.handoff("/tmp/x", "3", "GET /") end)
        assert.has_error(function() wsnotify.handoff("/tmp/x", 3.5, "GET /") end)
        assert.has_error(function() wsnotify.handoff("/tmp/x", 3) end)
        assert.has_error(function() wsnotify.handoff("/tmp/x", 3, 42) end)
    end)

    it("returns the core's codes, the socket still the caller's", function()
        local path, base = temp_path()
        local s = assert(socket.tcp4())
        local fd = s:getfd()
        local ok, err, code = wsnotify.handoff(path, fd, "GET /ws HTTP/1.1\r\n\r\n")
        assert.is_nil(ok)
        assert.equal("WSN_ECLOSED", code)
        assert.matches("^handoff: .*%[WSN_ECLOSED%]$", err)
        ok, _, code = wsnotify.handoff(path, fd, string.rep("x", MAX_HEAD + 1))
        assert.is_nil(ok)
        assert.equal("WSN_ELIMIT", code)
        for _, bad in ipairs{{"", fd, "GET"}, {path, -1, "GET"}, {path, fd, ""},
                             {path, 2 ^ 40, "GET"}, {"/" .. string.rep("d", 200), fd, "GET"}} do
            ok, _, code = wsnotify.handoff(bad[1], bad[2], bad[3])
            assert.is_nil(ok)
            assert.equal("WSN_EINVAL", code)
        end
        -- Still ours: it connects.
        local l = assert(socket.bind("127.0.0.1", 0))
        local _, port = l:getsockname()
        s:settimeout(H.TIMEOUT)
        assert(s:connect("127.0.0.1", port))
        s:close()
        l:close()
        os.remove(base)
    end)

    it("is an option of new_server: bound while the server runs", function()
        local by = {}
        for _, o in ipairs(wsnotify.options()) do by[o.name] = o end
        assert.equal("string", by.handoff_socket.type)
        assert.equal("", by.handoff_socket.default)
        local path, base = temp_path()
        local server = H.server{handoff_socket = path}
        assert.is_true(exists(path))
        server:close(1)
        assert.is_false(exists(path))
        assert.has_error(function() wsnotify.new_server{handoff_socket = 1} end)
        os.remove(base)
    end)

    describe("through a front", function()
        local server, f, path, base

        before_each(function()
            path, base = temp_path()
            server = H.server{handoff_socket = path}
            f = front(path)
        end)
        after_each(function()
            f.close()
            server:close(1)
            os.remove(base)
        end)

        it("serves the connection with the real peer address", function()
            local ws, c = H.connect_pair(server, {port = f.port, from = "127.0.0.2",
                                                  while_waiting = f.step})
            assert.same({true}, f.results)
            -- A proxy would have shown the front's own 127.0.0.1.
            assert.equal("127.0.0.2", c.remote_address)
            assert(server:subscribe(c, "news"))
            assert(server:publish("news", {n = 1}))
            assert.equal('{"channel":"news","type":"json","time":"T","message":{"n":1}}',
                         ws:expect_text())
            local got
            server:on_message(function(_, msg) got = msg end)
            ws:send_envelope("news", "hi", "m1")
            assert.is_true(H.pump(server, function() return got ~= nil end))
            assert.equal("hi", got.message)
            assert.equal(c.id, got.client_id)
            ws:close(1000)
            assert.is_true(H.pump(server, function() return server:connected_clients() == 0 end))
        end)

        it("refuses what the engine refuses of its own connections", function()
            local no, status = H.connect(server, {port = f.port, path = "/nope",
                                                  while_waiting = f.step})
            assert.is_nil(no)
            assert.matches(" 404", status)
            no, status = H.connect(server, {port = f.port, origin = "http://evil.example",
                                            while_waiting = f.step})
            assert.is_nil(no)
            assert.matches(" 403", status)
            assert.same({true, true}, f.results)
        end)
    end)
end)
