-- Authentication at the upgrade (authenticate = true): on_upgrade sees the
-- request and accepts (metadata, channels, expiry) or refuses with an HTTP
-- status; expiry closes with 4001 unless the client refreshed.
local H = require "spec.helper"
local socket = require "socket"
local wsnotify = require "wsnotify"

local function auth_server(handler, options)
    local o = {host = "127.0.0.1", port = 0, log_level = 0, authenticate = true}
    for k, v in pairs(options or {}) do o[k] = v end
    local s = assert(wsnotify.new_server(o))
    s:on_upgrade(handler)
    assert(s:start())
    return s
end

describe("authentication at the upgrade", function()
    local server
    after_each(function() if server then server:close(1) end end)

    it("accepts with metadata and channels, refuses with 401", function()
        local seen
        server = auth_server(function(req)
            seen = req
            if req:query_arg("token") == "T" or req:bearer_token() == "T" then
                return {metadata = {user = "ann", level = 3}, channels = {"news"}}
            end
            return {status = 401, body = "bad or missing token"}
        end)
        local connected
        server:on_connect(function(c) connected = c end)
        local ws = assert(H.connect(server, {pump = true, path = "/ws?token=T&b=x%20y",
                                             headers = {["X-Team"] = "a"}}))
        assert.is_true(H.pump(server, function() return connected ~= nil end))
        assert.equal("/ws", seen.path)
        assert.equal("token=T&b=x%20y", seen.query)
        assert.equal("x y", seen:query_arg("b"))
        assert.equal("127.0.0.1", seen.peer)
        assert.equal("a", seen:header("x-team"))
        assert.equal("ann", connected:get_metadata("user"))
        assert.equal(3, connected:get_metadata("level"))
        assert(server:publish("news", '"hi"'))
        assert.equal('{"channel":"news","type":"json","time":"T","message":"hi"}',
                     H.normalize(ws:expect_text()))
        local none, status, _, body = H.connect(server, {pump = true, path = "/ws?token=no"})
        assert.is_nil(none)
        assert.matches("^HTTP/1%.1 401", status)
        assert.equal("bad or missing token", body)
        ws:close()
    end)

    it("answers later, refuses with 500 when the handler raises", function()
        local waiting = {}
        server = auth_server(function(req)
            if req:query_arg("boom") then error("db down") end
            waiting[#waiting + 1] = req
            return nil
        end, {logger = function() end})
        -- the request waits: answer it from the pump's condition
        local got = {}
        local co = coroutine.wrap(function()
            got[1], got[2] = H.connect(server, {pump = true, path = "/ws?n=1"})
        end)
        -- drive: the connect pumps; answer as soon as the request is seen
        local answered = false
        local real_dispatch = server.dispatch
        server.dispatch = function(self, ...)
            local n = real_dispatch(self, ...)
            if not answered and waiting[1] then
                answered = true
                assert(waiting[1]:reject(403, "not today"))
            end
            return n
        end
        co()
        server.dispatch = real_dispatch
        assert.is_nil(got[1])
        assert.matches("^HTTP/1%.1 403", got[2])
        local none, status, _, body = H.connect(server, {pump = true, path = "/ws?boom=1"})
        assert.is_nil(none)
        assert.matches("^HTTP/1%.1 500", status)
        assert.equal("authentication failed", body)
        local ok, _, code = waiting[1]:reject(401)
        assert.is_nil(ok)
        assert.equal("WSN_EGONE", code)
    end)

    it("closes with 4001 at expiry unless refreshed", function()
        server = auth_server(function(req)
            local n = req:query_arg("n")
            return {expires_at = socket.gettime() + (n == "1" and 0.3 or 0.6)}
        end)
        local clients = {}
        server:on_connect(function(c) clients[#clients + 1] = c end)
        local a = assert(H.connect(server, {pump = true, path = "/ws?n=1"}))
        assert.is_true(H.pump(server, function() return #clients == 1 end))
        assert(clients[1]:set_expiry(nil)) -- refreshed in band
        local b = assert(H.connect(server, {pump = true, path = "/ws?n=2"}))
        assert.is_true(H.pump(server, function() return #clients == 2 end))
        local code, reason = b:expect_close(3)
        assert.equal(4001, code)
        assert.equal("authorization expired", reason)
        assert.is_true(clients[1].connected)
        assert(clients[1]:set_expiry(socket.gettime() - 1))
        code, reason = a:expect_close()
        assert.equal(4001, code)
        assert.equal("authorization expired", reason)
    end)

    it("needs a handler to start", function()
        local s = assert(wsnotify.new_server{host = "127.0.0.1", port = 0, authenticate = true})
        assert.has_error(function() s:start() end)
        s:close()
    end)
end)
