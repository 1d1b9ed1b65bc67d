-- Pub/sub from Lua: envelopes byte for byte, subscribe/unsubscribe,
-- publish_to_client, send_raw and their errors, over loopback.
local H = require "spec.helper"
local wsnotify = require "wsnotify"

describe("pub/sub", function()
    local server, ws, client

    before_each(function()
        server = H.server()
        ws, client = H.connect_pair(server)
    end)

    after_each(function()
        ws:close()
        server:close(1)
    end)

    it("publishes a Lua table as the JSON envelope", function()
        assert.is_true(server:subscribe(client, "c"))
        assert.is_true(server:publish("c", {a = 1}))
        assert.equal('{"channel":"c","type":"json","time":"T","message":{"a":1}}',
                     ws:expect_text())
        assert.is_true(server:publish("c", '{"b": [1, 2]}'))
        assert.equal('{"channel":"c","type":"json","time":"T","message":{"b":[1,2]}}',
                     ws:expect_text())
        assert.is_true(server:publish("c", {1, "x", wsnotify.null,
                                            wsnotify.empty_array, {}}))
        assert.equal('{"channel":"c","type":"json","time":"T","message":[1,"x",null,[],{}]}',
                     ws:expect_text())
    end)

    it("sends ids and the other types", function()
        server:subscribe(client, "c")
        assert.is_true(server:publish_with_type("c", {a = 1}, "json", "m1", "r1"))
        assert.equal('{"channel":"c","type":"json","time":"T","message":{"a":1},'
                     .. '"message_id":"m1","reply_to_id":"r1"}', ws:expect_text())
        assert.is_true(server:publish_with_type("c", 'h\195\169llo "w"\n', "text", nil, "r3"))
        assert.equal('{"channel":"c","type":"text","time":"T","message":'
                     .. '"h\195\169llo \\"w\\"\\n","reply_to_id":"r3"}', ws:expect_text())
        assert.is_true(server:publish_with_type("c", "\0\251\255\191\16", "binary", "m1"))
        assert.equal('{"channel":"c","type":"binary","time":"T","message":"APv/vxA=",'
                     .. '"message_id":"m1"}', ws:expect_text())
        assert.is_true(server:publish_with_type("c", "{}", "text"))
        assert.equal('{"channel":"c","type":"text","time":"T","message":"{}"}',
                     ws:expect_text())
    end)

    it("refuses bad values with nil, err, code", function()
        server:subscribe(client, "c")
        local ok, err, code = server:publish("c", "{bad")
        assert.is_nil(ok)
        assert.equal("WSN_EJSON", code)
        assert.matches("%[WSN_EJSON%]", err)
        ok, err, code = server:publish("", {})
        assert.equal("WSN_EINVAL", code)
        ok, err, code = server:publish_with_type("c", "a\255", "text")
        assert.equal("WSN_EINVAL", code)
        ok, err, code = server:subscribe(client, string.rep("x", 257))
        assert.equal("WSN_ELIMIT", code)
        ok, err, code = server:publish("a\0b", {})
        assert.equal("WSN_EINVAL", code)
        ws:expect_nothing(0.2)
    end)

    it("raises on misuse", function()
        assert.has_error(function() server:publish(1, {}) end)
        assert.has_error(function() server:publish("c", function() end) end)
        assert.has_error(function() server:publish_with_type("c", "x", "xml") end)
        assert.has_error(function() server:subscribe({}, "c") end)
        local t = {}
        t.self = t
        assert.has_error(function() server:publish("c", t) end)
        assert.has_error(function() server:publish("c", 0 / 0) end)
        assert.has_error(function() server:publish("c", {"\255"}) end,
                         "cannot encode a string that is not UTF-8 as JSON [WSN_EINVAL]")
    end)

    it("unsubscribes", function()
        server:subscribe(client, "c")
        assert.is_true(server:unsubscribe(client, "c"))
        assert.is_true(server:unsubscribe(client, "never"))
        server:publish("c", 1)
        ws:expect_nothing(0.2)
    end)

    it("forwards a received JSON message as it came", function()
        -- Each message kept in order: ws:expect_text() runs the handlers
        -- while it waits, so the second may arrive during it.
        local got
        local received = {}
        server:on_message(function(_, msg) received[#received + 1] = msg end)
        server:subscribe(client, "c")
        ws:send_text('{"type":"json","channel":"c","message":{"b": [1, 2.50], "s":"\\u00e9"}}')
        ws:send_text('{"type":"text","channel":"c","message":"plain"}')
        assert.is_true(H.pump(server, function() return received[1] ~= nil end))
        got = received[1]
        assert.is_true(server:publish("c", got))
        assert.equal('{"channel":"c","type":"json","time":"T","message":{"b":[1,2.50],"s":"\\u00e9"}}',
                     ws:expect_text())
        assert.equal(got.raw, wsnotify.json_encode(got))
        -- a raw the handler replaced is checked like any string
        local copy = got
        copy.raw = "{bad"
        local ok, _, code = server:publish("c", copy)
        assert.is_nil(ok)
        assert.equal("WSN_EJSON", code)
        assert.has_error(function() wsnotify.json_encode(copy) end)
        copy.raw = '{"replaced": 1}'
        assert.is_true(server:publish("c", copy))
        assert.equal('{"channel":"c","type":"json","time":"T","message":{"replaced":1}}',
                     ws:expect_text())
        assert.is_true(H.pump(server, function() return received[2] ~= nil end))
        got = received[2]
        assert.equal("text", got.type)
        assert.has_error(function() server:publish("c", got) end)
        assert.is_true(server:publish_with_type("c", got.raw, got.type))
        assert.equal('{"channel":"c","type":"text","time":"T","message":"plain"}',
                     ws:expect_text())
    end)

    it("reaches every subscriber once and no one else", function()
        local ws2, c2 = H.connect_pair(server)
        local ws3 = H.connect_pair(server)
        server:subscribe(client, "room")
        server:subscribe(c2, "room")
        server:subscribe(c2, "room") -- twice is once
        server:publish("room", {n = 1})
        local want = '{"channel":"room","type":"json","time":"T","message":{"n":1}}'
        assert.equal(want, ws:expect_text())
        assert.equal(want, ws2:expect_text())
        ws2:expect_nothing(0.1)
        ws3:expect_nothing(0.1)
        ws2:close()
        ws3:close()
    end)

    it("sends to one client, by object or id", function()
        assert.is_true(server:publish_to_client(client, "", {hi = true}, "json", nil, "q1"))
        assert.equal('{"channel":"","type":"json","time":"T","message":{"hi":true},'
                     .. '"reply_to_id":"q1"}', ws:expect_text())
        assert.is_true(server:publish_to_client(client.id, "x", "hey", "text"))
        assert.equal('{"channel":"x","type":"text","time":"T","message":"hey"}',
                     ws:expect_text())
        local ok, _, code = server:publish_to_client("c_0", "x", 1)
        assert.is_nil(ok)
        assert.equal("WSN_EGONE", code)
    end)

    it("sends raw frames", function()
        assert.is_true(server:send_raw(client, "plain"))
        local kind, payload = ws:recv()
        assert.equal("text", kind)
        assert.equal("plain", payload)
        assert.is_true(server:send_raw(client, "\0\1\2", "binary"))
        kind, payload = ws:recv()
        assert.equal("binary", kind)
        assert.equal("\0\1\2", payload)
    end)

    it("answers WSN_EGONE for a client that left", function()
        local gone = false
        server:on_disconnect(function(c) gone = c.id == client.id end)
        ws:close(1000)
        assert.is_true(H.pump(server, function() return gone end))
        assert.is_false(client.connected)
        local ok, _, code = server:subscribe(client, "c")
        assert.is_nil(ok)
        assert.equal("WSN_EGONE", code)
        ok, _, code = server:publish_to_client(client, "c", 1)
        assert.equal("WSN_EGONE", code)
    end)

    it("refuses the channel beyond max_subscriptions (0.3) with WSN_ELIMIT", function()
        local capped = H.server({max_subscriptions = 2})
        local cws, c = H.connect_pair(capped)
        assert.is_true(capped:subscribe(c, "a"))
        assert.is_true(capped:subscribe(c, "b"))
        local ok, err, code = capped:subscribe(c, "c")
        assert.is_nil(ok)
        assert.equal("WSN_ELIMIT", code)
        assert.matches("configured size limit exceeded", err, 1, true)
        assert.is_true(capped:publish("c", 0))
        assert.is_true(capped:publish("a", 1))
        assert.is_true(capped:publish("b", 2))
        assert.equal('{"channel":"a","type":"json","time":"T","message":1}', cws:expect_text())
        assert.equal('{"channel":"b","type":"json","time":"T","message":2}', cws:expect_text())
        cws:close()
        capped:close(1)
    end)
end)
