-- metrics() and metrics_text(): the core's snapshot after a known sequence
-- with real clients (exact counts), and GET /metrics with and without its
-- token (C: test_metrics).
local H = require "spec.helper"

local JSON_MSG = '{"type":"json","channel":"room","message":{"n":1}}'
local TEXT_MSG = '{"type":"text","channel":"room","message":"hello"}'
local BIN_MSG = "\0\1\2\255"

describe("metrics", function()
    it("counts a known sequence exactly", function()
        local N, M, K = 2, 2, 3
        local server = H.server{metrics = true}
        local got = 0
        server:on_message(function() got = got + 1 end)
        local peers, clients = {}, {}
        for i = 1, N do peers[i], clients[i] = H.connect_pair(server) end
        local refused, status = H.connect(server, {origin = "http://elsewhere.example"})
        assert.is_nil(refused)
        assert.matches("^HTTP/1%.%d 403", status)
        for i = 1, N do assert.is_true(server:subscribe(clients[i], "room")) end
        for _ = 1, M do
            peers[1]:send_text(JSON_MSG)
            peers[1]:send_text(TEXT_MSG)
            peers[1]:send_binary(BIN_MSG)
        end
        peers[1]:send_text("not json")
        assert.matches('"error":"invalid JSON format"', peers[1]:expect_text())
        assert.is_true(H.pump(server, function() return got == 3 * M end))
        for k = 1, K do
            assert.is_true(server:publish("room", {k = k}))
            for i = 1, N do peers[i]:expect_text() end
        end
        -- The I/O thread counts a frame right after writing it.
        assert.is_true(H.pump(server, function()
            return server:metrics().messages_sent == 1 + N * K
        end))

        local m = server:metrics()
        assert.equal(N, m.connections)
        assert.equal(N, m.connections_accepted)
        assert.equal(1, m.connections_refused.origin)
        assert.equal(0, m.connections_refused.max_clients)
        assert.equal(0, m.connections_closed.queue_full)
        assert.equal(0, m.connections_ended)
        assert.equal(N, m.subscriptions)
        assert.equal(1, m.channels)
        assert.same({json = M, text = M, binary = M}, m.messages_received)
        assert.same({json = M * #JSON_MSG, text = M * #TEXT_MSG, binary = M * #BIN_MSG},
                    m.bytes_received)
        assert.equal(1, m.messages_invalid)
        assert.equal(1 + N * K, m.deliveries)
        assert.equal(0, m.messages_dropped)
        assert.equal(0, m.queued)
        assert.equal(0, m.queue_max)
        assert.equal(0, m.publish_refused_limit)
        assert.equal(0, m.pending_batches)
        assert.is_false(m.reads_paused)
        assert.equal("none", m.broker_state)

        local text = server:metrics_text()
        assert.matches("\nwsnotify_connections 2\n", text, 1, true)
        assert.matches('\nwsnotify_connections_refused_total{reason="origin"} 1\n', text, 1, true)
        assert.matches("\n# TYPE wsnotify_deliveries_total counter\n", text, 1, true)
        local code, body = H.http_get(server.port, "/metrics")
        assert.equal(200, code)
        assert.matches("\nwsnotify_deliveries_total 7\n", body, 1, true)

        -- A client leaves: its end and its subscription are counted.
        peers[2]:close()
        assert.is_true(H.pump(server, function()
            return server:metrics().connections_ended == 1
        end))
        m = server:metrics()
        assert.equal(N - 1, m.connections)
        assert.equal(N - 1, m.subscriptions)
        peers[1]:close()
        server:close(1)
    end)

    it("serves /metrics only with the token, and not at all when off", function()
        local server = H.server{metrics = true, metrics_token = "lua-t0ken"}
        assert.equal(401, (H.http_get(server.port, "/metrics")))
        assert.equal(401, (H.http_get(server.port, "/metrics",
                                      {Authorization = "Bearer nope"})))
        local code, body = H.http_get(server.port, "/metrics",
                                      {Authorization = "Bearer lua-t0ken"})
        assert.equal(200, code)
        assert.matches("\nwsnotify_connections 0\n", body, 1, true)
        server:close(1)
        local off = H.server()
        assert.equal(404, (H.http_get(off.port, "/metrics")))
        off:close(1)
    end)

    it("counts refused publishes", function()
        local server = H.server{max_channel_name = 4}
        local ok, _, code = server:publish("toolong", 1)
        assert.is_nil(ok)
        assert.equal("WSN_ELIMIT", code)
        assert.equal(1, server:metrics().publish_refused_limit)
        server:close(1)
    end)
end)
