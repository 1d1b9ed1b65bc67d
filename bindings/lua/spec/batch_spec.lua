-- Batched publishing: publish_wait, publish_wait_with_type,
-- publish_wait_string, cancel_pending_messages, pending_batches.
local H = require "spec.helper"
local wsnotify = require "wsnotify"

local TTL = 0.2

local function batch_env(name, messages)
    return '{"channel":"c","type":"json","time":"T","message":{"messages":'
        .. messages .. ',"name":"' .. name .. '"}}'
end

describe("batching", function()
    local server, ws, client

    before_each(function()
        server = H.server()
        ws, client = H.connect_pair(server)
        server:subscribe(client, "c")
    end)

    after_each(function()
        ws:close()
        server:close(1)
    end)

    it("delivers JSON messages as one batch", function()
        assert.is_true(server:publish_wait("c", {user = "A", x = 10}, 12345, "cursor-updates", TTL))
        assert.is_true(server:publish_wait("c", '{"user":"B","pos":82}', 12345, "cursor-updates", TTL))
        assert.equal(1, server:pending_batches())
        local env = ws:expect_text()
        assert.matches('^{"channel":"c","type":"json","time":"T","message":{"messages":%[', env)
        -- Lua tables have no key order: the first message is compared
        -- decoded, the second (sent as text) as it was sent.
        local msg = wsnotify.json_decode(env).message
        assert.equal("cursor-updates", msg.name)
        assert.equal(2, #msg.messages)
        assert.same({user = "A", x = 10}, msg.messages[1])
        assert.matches(',{"user":"B","pos":82}%],"name":"cursor%-updates"}}$', env)
        assert.equal(0, server:pending_batches())
    end)

    it("keeps identical messages once, in first-seen order", function()
        for _, m in ipairs({'{"a":1,"b":2}', 3, '{"b":2,"a":1}', '"s"', 3, '"s"', {1}}) do
            assert.is_true(server:publish_wait("c", m, 1, "d", TTL))
        end
        assert.equal(batch_env("d", '[{"a":1,"b":2},3,"s",[1]]'), ws:expect_text())
    end)

    it("joins text batches under their name", function()
        server:publish_wait_string("c", "INFO: User logged in", 1, "Server-1 Logs", TTL)
        server:publish_wait_string("c", "WARN: High CPU", 1, "Server-1 Logs", TTL)
        server:publish_wait_string("c", "INFO: User logged in", 1, "Server-1 Logs", TTL)
        assert.equal('{"channel":"c","type":"text","time":"T","message":'
                     .. '"Server-1 Logs\\n\\nINFO: User logged in\\nWARN: High CPU"}',
                     ws:expect_text())
    end)

    it("batches binary as base64 and other types by name", function()
        server:publish_wait_with_type("c", "\0\251", "binary", 5, "bin", TTL)
        server:publish_wait_with_type("c", "\255", "binary", 5, "bin", TTL)
        assert.equal(batch_env("bin", '["APs=","/w=="]'), ws:expect_text())
        server:publish_wait_with_type("c", {k = 1}, "json", 6, "j", TTL)
        assert.equal(batch_env("j", '[{"k":1}]'), ws:expect_text())
        server:publish_wait_with_type("c", "line", "text", 7, "t", TTL)
        assert.equal('{"channel":"c","type":"text","time":"T","message":"t\\n\\nline"}',
                     ws:expect_text())
    end)

    it("lets the first call fix name and ttl", function()
        server:publish_wait("c", 1, 9, "first", TTL)
        server:publish_wait("c", 2, 9, "second", 3600)
        assert.equal(batch_env("first", "[1,2]"), ws:expect_text())
    end)

    it("cancels a pending batch", function()
        server:publish_wait("c", 1, 4, "gone", TTL)
        server:publish_wait("c", 2, 5, "kept", TTL)
        assert.equal(2, server:pending_batches())
        assert.is_true(server:cancel_pending_messages("c", 4))
        assert.is_true(server:cancel_pending_messages("c", 404))
        assert.equal(1, server:pending_batches())
        assert.equal(batch_env("kept", "[2]"), ws:expect_text())
        ws:expect_nothing(TTL * 2)
    end)

    it("refuses bad batches", function()
        local ok, _, code = server:publish_wait("c", "{nope", 1, "n", TTL)
        assert.is_nil(ok)
        assert.equal("WSN_EJSON", code)
        assert.has_error(function() server:publish_wait("c", 1, -1, "n", TTL) end)
        assert.has_error(function() server:publish_wait("c", 1, 1, "n") end)
        assert.equal(0, server:pending_batches())
    end)

    it("delivers pending batches at shutdown", function()
        server:publish_wait("c", {last = true}, 1, "n", 3600)
        assert.is_true(server:shutdown(5))
        local code, reason, frames = ws:expect_close()
        assert.equal(1001, code)
        assert.equal("server shutdown", reason)
        assert.same({'{"channel":"c","type":"json","time":"T","message":'
                     .. '{"messages":[{"last":true}],"name":"n"}}'},
                    {H.normalize(frames[1])})
    end)
end)
