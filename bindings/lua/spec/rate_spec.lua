-- The per-client inbound message rate (client_rate, client_burst): a
-- flood is closed with 1008 "message rate exceeded"; what was within the
-- bucket reaches the handler in order, nothing after (C: test_rate.c).
local H = require "spec.helper"
local socket = require "socket"
local wsnotify = require "wsnotify"

-- count numbered messages from one client: close code, reason, the
-- handler's messages up to the disconnect, seconds taken.
local function flood(options, count)
    local server = H.server(options)
    local got, gone = {}, false
    server:on_message(function(c, msg) got[#got + 1] = msg.message end)
    server:on_disconnect(function() gone = true end)
    local ws = H.connect_pair(server)
    local start = socket.gettime()
    for i = 0, count - 1 do
        if not ws:send_text('{"type":"json","message":' .. i .. '}') then break end
    end
    local code, reason = ws:expect_close()
    ws:close() -- the close answered, as a browser does: lws then closes at once
    assert.is_true(H.pump(server, function() return gone end))
    local secs = socket.gettime() - start
    server:close(1)
    return code, reason, got, secs
end

local function in_order(got)
    for i, v in ipairs(got) do assert.equal(i - 1, v) end
end

describe("client_rate", function()
    it("closes a flood with 1008; the burst reaches the handler, in order", function()
        local code, reason, got, secs = flood({client_rate = 1, client_burst = 5}, 40)
        assert.equal(1008, code)
        assert.equal("message rate exceeded", reason)
        assert.is_true(#got >= 5 and #got <= 5 + math.floor(secs + 1))
        in_order(got)
    end)

    it("bounds a flood with the defaults (100/s, burst 200)", function()
        local defaults = {}
        for _, o in ipairs(wsnotify.options()) do defaults[o.name] = o.default end
        assert.equal(100, defaults.client_rate)
        assert.equal(200, defaults.client_burst)
        local code, _, got, secs = flood(nil, 1000)
        assert.equal(1008, code)
        assert.is_true(#got >= 200 and #got <= 200 + math.floor(100 * (secs + 0.01)))
        in_order(got)
    end)

    it("client_rate 0: no limit", function()
        local server = H.server{client_rate = 0}
        local n = 0
        server:on_message(function() n = n + 1 end)
        local ws = H.connect_pair(server)
        for i = 0, 999 do assert(ws:send_text('{"type":"json","message":' .. i .. '}')) end
        assert.is_true(H.pump(server, function() return n == 1000 end))
        ws:close()
        server:close(1)
    end)
end)
