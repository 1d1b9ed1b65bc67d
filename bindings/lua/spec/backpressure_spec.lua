-- Backpressure and limits: drop mode closes a slow client with 1001 and
-- the reason, the others are unaffected; max_clients refuses upgrades.
local H = require "spec.helper"
local wsnotify = require "wsnotify"

local PAYLOAD = string.rep("x", 16384)
-- More than the kernel buffers of a client that reads nothing can absorb.
local FLOOD = 600

describe("backpressure", function()
    for _, reason in ipairs({false, "too slow, bye"}) do
        it("in drop mode closes a slow client with 1001 " .. (reason or "(default reason)"), function()
            local server = H.server{drop_on_backpressure = true, send_buffer = 4,
                                    close_grace = 5, backpressure_reason = reason or nil}
            local slow, sc = H.connect_pair(server, {rcvbuf = 4096})
            local fast, fc = H.connect_pair(server)
            server:subscribe(sc, "c")
            server:subscribe(fc, "c")
            local gone = false
            server:on_disconnect(function(c) if c.id == sc.id then gone = true end end)
            for i = 1, FLOOD do
                assert.is_true(server:publish("c", {i = i, p = PAYLOAD}))
                local msg = wsnotify.json_decode(fast:expect_text()).message
                assert.equal(i, msg.i) -- lockstep: the fast one is never behind
            end
            local code, why, frames = slow:expect_close(H.TIMEOUT * 2)
            assert.equal(1001, code)
            assert.equal(reason or "going away: backpressure", why)
            assert.is_true(#frames < FLOOD)
            for i, f in ipairs(frames) do -- what it got is a prefix
                assert.equal(i, wsnotify.json_decode(f).message.i)
            end
            assert.is_true(H.pump(server, function() return gone end))
            server:publish("c", '"end"')
            assert.equal('{"channel":"c","type":"json","time":"T","message":"end"}',
                         fast:expect_text())
            assert.is_true(fc.connected)
            assert.same({fc.id}, server:client_list())
            fast:close()
            server:close(1)
        end)
    end

    it("refuses upgrades beyond max_clients", function()
        local server = H.server{max_clients = 2}
        local a = H.connect_pair(server)
        local b = H.connect_pair(server)
        local c, status = H.connect(server)
        assert.is_nil(c)
        assert.is_not_nil(status)
        assert.equal(2, server:connected_clients())
        a:close()
        b:close()
        server:close(1)
    end)
end)
