-- Events: handlers run on the Lua thread from dispatch(), with the
-- message's fields; a failing handler is logged and the server goes on.
local H = require "spec.helper"
local wsnotify = require "wsnotify"

describe("events", function()
    local server, lines

    before_each(function()
        lines = {}
        server = H.server{logger = function(level, line)
            lines[#lines + 1] = level .. ": " .. line
        end}
    end)
    after_each(function() server:close(1) end)

    it("give connect, message and disconnect in order", function()
        local seen = {}
        server:on_connect(function(c) seen[#seen + 1] = "connect " .. c.id end)
        server:on_message(function(c, msg)
            seen[#seen + 1] = "message " .. c.id .. " " .. msg.raw
        end)
        server:on_disconnect(function(c) seen[#seen + 1] = "disconnect " .. c.id end)
        local ws, c = H.connect_pair(server)
        ws:send_envelope("room", {n = 1})
        ws:send_envelope("room", {n = 2})
        ws:close(1000)
        assert.is_true(H.pump(server, function() return #seen == 4 end))
        assert.same({"connect " .. c.id, "message " .. c.id .. ' {"n":1}',
                     "message " .. c.id .. ' {"n":2}', "disconnect " .. c.id}, seen)
    end)

    it("hand the message's fields to the handler", function()
        local got = {}
        server:on_message(function(c, msg) got[#got + 1] = msg end)
        local ws, c = H.connect_pair(server)
        ws:send_text('{"type":"json","channel":"room","message":{"action": "x", "n": [1, 2]},'
                     .. '"message_id":"m1","reply_to_id":"r0"}')
        ws:send_text('{"type":"text","channel":"t","message":"hi there"}')
        ws:send_binary("\0\1\255")
        assert.is_true(H.pump(server, function() return #got == 3 end))
        local m = got[1]
        assert.equal("json", m.type)
        assert.equal("room", m.channel)
        assert.equal('{"action":"x","n":[1,2]}', m.raw)
        assert.equal("m1", m.message_id)
        assert.equal("r0", m.reply_to_id)
        assert.equal(c.id, m.client_id)
        assert.equal("x", m.message.action)
        assert.same({1, 2}, {m.message.n[1], m.message.n[2]})
        assert.equal("x", wsnotify.json_get_string(m.raw, "action"))
        assert.equal("text", got[2].type)
        assert.equal("t", got[2].channel)
        assert.equal("hi there", got[2].message)
        assert.equal("", got[2].message_id)
        assert.equal("binary", got[3].type)
        assert.equal("\0\1\255", got[3].message)
        ws:close()
    end)

    it("log a failing handler with its traceback and go on", function()
        local n = 0
        server:on_message(function(c, msg)
            n = n + 1
            if n == 1 then error("boom in handler") end
            server:publish_to_client(c, "", {ok = n})
        end)
        local ws = H.connect_pair(server)
        ws:send_envelope("room", 1)
        ws:send_envelope("room", 2)
        assert.equal('{"channel":"","type":"json","time":"T","message":{"ok":2}}',
                     ws:expect_text())
        assert.equal(1, #lines)
        assert.matches("^error: message handler failed: .*boom in handler", lines[1])
        assert.matches("stack traceback", lines[1])
        ws:close()
    end)

    it("are taken at most max per dispatch, without waiting", function()
        local n = 0
        server:on_message(function() n = n + 1 end)
        local ws = H.connect_pair(server)
        for i = 1, 5 do ws:send_envelope("room", i) end
        -- All five arrive; no dispatch(2) runs more than two.
        local deadline = os.time() + H.TIMEOUT
        while n < 5 and os.time() <= deadline do
            local before = n
            local took = server:dispatch(2)
            assert.is_true(took <= 2)
            assert.is_true(n - before <= 2)
            if took == 0 then server:wait(0.05) end
        end
        assert.equal(5, n)
        assert.equal(0, server:dispatch())
        ws:close()
    end)

    it("larger than the batch arena (256 KiB) arrive whole, in order, between small ones", function()
        local got = {}
        server:on_message(function(c, msg) got[#got + 1] = msg end)
        local ws, c = H.connect_pair(server)
        local big = string.rep("x", 300 * 1024)
        local bytes = "\1" .. string.rep("\7", 300 * 1024 - 2) .. "\2"
        ws:send_envelope("a", 1)
        ws:send_text('{"type":"json","channel":"b\195\175g","message":{"big":"' .. big
                     .. '"},"message_id":"m2","reply_to_id":"r2"}')
        ws:send_binary(bytes)
        ws:send_text('{"type":"text","channel":"z","message":"\195\169"}')
        assert.is_true(H.pump(server, function() return #got == 4 end))
        assert.equal("1", got[1].raw)
        assert.same({"b\195\175g", "m2", "r2", c.id},
                    {got[2].channel, got[2].message_id, got[2].reply_to_id, got[2].client_id})
        assert.equal('{"big":"' .. big .. '"}', got[2].raw)
        assert.equal("binary", got[3].type)
        assert.equal(bytes, got[3].raw)
        assert.same({"text", "z", "\195\169"}, {got[4].type, got[4].channel, got[4].message})
        ws:close()
    end)

    it("go on in a handler that dispatches again: each once, in order", function()
        local seen = {}
        server:on_message(function(c, msg)
            seen[#seen + 1] = msg.raw
            if msg.raw == "1" then server:dispatch() end
        end)
        local ws = H.connect_pair(server)
        for i = 1, 5 do ws:send_envelope("room", i) end
        assert.is_true(H.pump(server, function() return #seen == 5 end))
        assert.same({"1", "2", "3", "4", "5"}, seen)
        assert.equal(0, server:dispatch())
        ws:close()
    end)

    it("come as raw text with raw_incoming", function()
        server:close(1)
        server = H.server{raw_incoming = true}
        local got
        server:on_message(function(c, msg)
            got = msg
            server:send_raw(c, "echo:" .. msg.raw)
        end)
        local ws = H.connect_pair(server)
        ws:send_text("not an envelope")
        local kind, payload = ws:recv()
        assert.equal("text", kind)
        assert.equal("echo:not an envelope", payload)
        assert.equal("text", got.type)
        ws:close()
    end)

    it("expose a pollable fd", function()
        local fd = server:event_fd()
        assert.is_true(type(fd) == "number" and fd >= 0)
        assert.is_false(server:wait(0))
        local ws = H.connect_pair(server) -- the connect event was dispatched
        ws:send_envelope("c", 1)
        assert.is_true(server:wait(H.TIMEOUT))
        assert.equal(1, server:dispatch())
        ws:close()
    end)
end)
