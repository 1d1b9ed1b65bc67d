-- Shutdown: 1001 "server shutdown", nothing accepted lost, the remaining
-- handlers run, calls afterwards answer WSN_ECLOSED; __gc and __close.
local H = require "spec.helper"
local wsnotify = require "wsnotify"

describe("shutdown", function()
    it("closes every client with 1001 and runs their disconnects", function()
        local server = H.server()
        local gone = {}
        server:on_disconnect(function(c) gone[#gone + 1] = c.id end)
        local ws1, c1 = H.connect_pair(server)
        local ws2, c2 = H.connect_pair(server)
        assert.is_true(server:shutdown(5))
        assert.is_true(server.stopped)
        for _, ws in ipairs({ws1, ws2}) do
            local code, reason, frames = ws:expect_close()
            assert.equal(1001, code)
            assert.equal("server shutdown", reason)
            assert.equal(0, #frames)
        end
        table.sort(gone)
        local want = {c1.id, c2.id}
        table.sort(want)
        assert.same(want, gone)
        local ok, _, code = server:publish("c", 1)
        assert.is_nil(ok)
        assert.equal("WSN_ECLOSED", code)
        ok, _, code = server:start()
        assert.equal("WSN_ECLOSED", code)
        assert.is_true(server:shutdown(1)) -- again: fine
        assert.equal(0, server:dispatch())
        assert.is_true(server:run())
        server:close()
        server:close()
    end)

    it("delivers everything accepted before it", function()
        local server = H.server()
        local ws, c = H.connect_pair(server)
        server:subscribe(c, "c")
        for i = 1, 500 do assert.is_true(server:publish("c", {i = i})) end
        server:publish_to_client(c, "", "last", "text")
        assert.is_true(server:shutdown(5))
        local code, _, frames = ws:expect_close()
        assert.equal(1001, code)
        assert.equal(501, #frames)
        for i = 1, 500 do
            assert.equal('{"channel":"c","type":"json","time":"T","message":{"i":' .. i .. '}}',
                         H.normalize(frames[i]))
        end
        assert.equal('{"channel":"","type":"text","time":"T","message":"last"}',
                     H.normalize(frames[501]))
        server:close()
    end)

    it("from a handler ends run()", function()
        local server = H.server()
        server:on_message(function(c, msg)
            if msg.message.action == "stop" then server:shutdown(5) end
        end)
        local ws = H.connect_pair(server)
        ws:send_envelope("c", {action = "stop"})
        assert.is_true(server:run())
        assert.is_true(server.stopped)
        assert.equal(1001, (ws:expect_close()))
        server:close()
    end)

    it("happens when the server is garbage", function()
        local server = H.server()
        local ws = H.connect_pair(server)
        ws.server = {dispatch = function() end} -- the last reference
        server = nil
        collectgarbage()
        collectgarbage()
        local code, reason = ws:expect_close()
        assert.equal(1001, code)
        assert.equal("server shutdown", reason)
    end)

    if _VERSION == "Lua 5.4" then
        it("happens at the end of a <close> scope", function()
            local ws
            local scope = assert(load([[
                local H, ws_out = ...
                local server <close> = H.server()
                ws_out.ws = H.connect_pair(server)
            ]]))
            local out = {}
            scope(H, out)
            ws = out.ws
            local code = ws:expect_close()
            assert.equal(1001, code)
        end)
    end

    -- The interpreter running the specs (test.sh says which).
    local lua = os.getenv("WSN_LUA")
    local exiting = lua and it or pending
    exiting("lets a program end with servers still running", function()
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write([[
            local wsnotify = require "wsnotify"
            S = assert(wsnotify.new_server{host = "127.0.0.1", port = 0, log_level = 0})
            assert(S:start())
            local more = {}
            for i = 1, 3 do
                more[i] = assert(wsnotify.new_server{host = "127.0.0.1", port = 0, log_level = 0})
                assert(more[i]:start())
            end
            io.write("started\n")
        ]])
        f:close()
        local p = assert(io.popen(lua .. " " .. script .. " 2>&1; echo rc=$?"))
        local out = p:read("*a")
        p:close()
        os.remove(script)
        assert.equal("started\nrc=0\n", out)
    end)

    it("reports why start failed", function()
        local a = H.server()
        local b = assert(wsnotify.new_server{host = "127.0.0.1", port = a.port, log_level = 0})
        local ok, err, code = b:start()
        assert.is_nil(ok)
        assert.equal("WSN_EIO", code)
        assert.matches(tostring(a.port), err)
        b:close()
        a:close()
    end)
end)
