-- Ping/pong with small durations: a client that answers pings stays, one
-- that never does is dropped after pong_wait.
local H = require "spec.helper"

describe("keepalive", function()
    it("drops a silent client and keeps one that answers pings", function()
        local server = H.server{pong_wait = 0.6, ping_period = 0.2}
        local alive, ac = H.connect_pair(server)
        local silent, sc = H.connect_pair(server, {rcvbuf = 4096})
        local gone = false
        server:on_disconnect(function(c) if c.id == sc.id then gone = true end end)
        local pinged = 0
        local orig = alive.send_frame
        alive.send_frame = function(self, op, payload, fin)
            if op == 10 then pinged = pinged + 1 end
            return orig(self, op, payload, fin)
        end
        -- alive:recv answers the pings while it waits.
        assert.is_true(H.pump(server, function()
            alive:recv(0.02)
            return gone
        end))
        assert.is_false(sc.connected)
        assert.is_true(pinged >= 2) -- it saw pings all that time
        assert.is_true(ac.connected)
        assert.same({ac.id}, server:client_list())
        server:subscribe(ac, "c")
        server:publish("c", '"still here"')
        assert.equal('{"channel":"c","type":"json","time":"T","message":"still here"}',
                     alive:expect_text())
        alive:close()
        silent:close()
        server:close(1)
    end)
end)
