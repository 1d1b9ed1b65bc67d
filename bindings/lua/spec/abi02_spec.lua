-- What ABI 0.2 adds, from Lua: the engine's log lines taken on the Lua
-- thread, and publishes that never wait (nonblocking, room_fd).
local H = require "spec.helper"
local socket = require "socket"

-- An fd as luasocket's select takes it.
local function fd_object(fd)
    return {getfd = function() return fd end, dirty = function() return false end}
end

local function readable(fd, timeout)
    local r = socket.select({fd_object(fd)}, nil, timeout)
    return #r == 1
end

describe("ABI 0.2", function()
    it("hands the engine's log lines to the logger on this thread", function()
        local lines = {}
        local server = H.server{log_level = 3, logger = function(level, line, source)
            lines[#lines + 1] = {level, line, source}
        end}
        assert.is_true(H.pump(server, function() return #lines > 0 end))
        local port = server.port
        assert.same({"info", "listening on 127.0.0.1:" .. port, "wsnotify.core"},
                    lines[1])
        assert.equal(0, server:logs_dropped())
        server:close(1)
        local last = lines[#lines]
        assert.equal("wsnotify.core", last[3])
    end)

    it("refuses a publish without room instead of waiting", function()
        -- write_wait also bounds how long a queued message may wait (0.3):
        -- long enough that the client is still there when it reads.
        local server = H.server{nonblocking = true, send_buffer = 4, write_wait = 5000}
        local ws, c = H.connect_pair(server)
        server:subscribe(c, "c")
        local room = server:room_fd()
        assert.is_true(readable(room, 0))
        -- The client reads nothing: its queue and its socket fill up.
        -- A refusal can come while the kernel still takes bytes, and the I/O
        -- thread's next write then opens room again; only once the sockets
        -- are full does the refusal last, and the fd must then say so.
        local big = {data = string.rep("x", 64 * 1024)}
        local accepted, code, lasting = 0, nil, false
        for _ = 1, 2000 do
            local ok, _, c2 = server:publish("c", big)
            if ok then
                accepted = accepted + 1
            else
                code = c2
                if not readable(room, 0.05) then lasting = true; break end
            end
        end
        assert.equal("WSN_EAGAIN", code)
        assert.is_true(lasting)
        -- Reading frees room; the fd says so, and publishing works again.
        for _ = 1, accepted do
            local kind = ws:recv()
            assert.equal("text", kind)
        end
        assert.is_true(readable(room, H.TIMEOUT))
        assert.is_true(server:publish("c", {after = true}))
        assert.equal('{"channel":"c","type":"json","time":"T","message":{"after":true}}',
                     ws:expect_text())
        ws:close()
        server:close(1)
    end)
end)
