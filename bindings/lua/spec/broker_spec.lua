-- The Redis broker from Lua: broker= by name, broker_state(), on_broker,
-- WSN_EBROKER, publish_to_client_id across servers. Two servers in this
-- Lua state and a redis-server of the spec's own (tests/test_broker.c runs
-- three servers in separate processes).
local H = require "spec.helper"
local socket = require "socket"

local redis_bin = os.getenv("WSN_REDIS_SERVER")
if not redis_bin then
    local p = io.popen("command -v redis-server")
    redis_bin = p:read("*l")
    p:close()
end

local Redis = {}
Redis.__index = Redis

local function new_redis()
    local p = io.popen("mktemp -d /tmp/wsnr-XXXXXX")
    local dir = p:read("*l")
    p:close()
    return setmetatable({dir = dir, sock = dir .. "/r.sock"}, Redis)
end

function Redis:start()
    local p = io.popen(string.format(
        "%s --port 0 --unixsocket %s --save '' --appendonly no --dir %s "
        .. "--logfile redis.log >/dev/null 2>&1 & echo $!", redis_bin, self.sock, self.dir))
    self.pid = p:read("*l")
    p:close()
    local deadline = socket.gettime() + H.TIMEOUT
    while true do -- until its socket exists: a bounded poll
        local r = os.execute("test -S " .. self.sock)
        if r == true or r == 0 then return end
        assert(socket.gettime() < deadline, "redis-server did not start")
        socket.select(nil, nil, 0.01)
    end
end

function Redis:kill()
    os.execute("kill -9 " .. self.pid .. " 2>/dev/null; while kill -0 " .. self.pid
               .. " 2>/dev/null; do :; done")
    os.remove(self.sock)
    self.pid = nil
end

function Redis:finish()
    if self.pid then self:kill() end
    os.execute("rm -rf " .. self.dir)
end

local function json_field(text, key)
    return text:match('"' .. key .. '":(%b{})')
end

describe("broker", function()
    if not redis_bin or redis_bin == "" then
        pending("redis-server not installed (scripts/setup.sh)")
        return
    end

    it("spreads publishes, reports its state, survives a Redis restart", function()
        local redis = new_redis()
        finally(function() redis:finish() end)
        redis:start()
        local url = "unix:" .. redis.sock
        local a, b = H.server({broker = url}), H.server({broker = url})
        local sa, sb = {}, {}
        a:on_broker(function(state, reason) sa[#sa + 1] = state .. ":" .. reason end)
        b:on_broker(function(state, reason) sb[#sb + 1] = state .. ":" .. reason end)
        local function both(n)
            return H.pump(a, function() b:dispatch(); return #sa >= n and #sb >= n end)
        end
        assert.is_true(both(1))
        assert.equal("up:", sa[1])
        assert.equal("up", a:broker_state().state)
        assert.equal(10, #a:broker_state().server_id)

        local wb, cb = H.connect_pair(b)
        assert.equal("c_" .. b:broker_state().server_id .. "_", cb.id:sub(1, 13))
        b:subscribe(cb, "room")
        -- Probes until b's subscription is live in Redis.
        local got
        for i = 1, 200 do
            a:publish("room", {probe = i})
            local kind = wb:recv(0.05)
            if kind == "text" then got = true; break end
        end
        assert.is_true(got)
        a:publish("room", {probe = "end"})
        repeat local t = wb:expect_text() until t:find('"end"', 1, true)

        assert.is_true(a:publish("room", {n = 1}))
        assert.equal('{"n":1}', json_field(wb:expect_text(), "message"))
        assert.is_true(a:publish_to_client_id(cb.id, "dm", {to = "b"}))
        assert.equal('{"to":"b"}', json_field(wb:expect_text(), "message"))

        redis:kill()
        assert.is_true(both(2))
        assert.truthy(sa[2]:find("^down:redis unix:"))
        local ok, err, code = a:publish("room", {n = 2})
        assert.is_nil(ok)
        assert.equal("WSN_EBROKER", code, err)
        ok, err, code = a:publish_to_client_id(cb.id, "dm", {})
        assert.is_nil(ok)
        assert.equal("WSN_EBROKER", code, err)

        redis:start()
        assert.is_true(both(3))
        assert.equal("up:", sb[3])
        assert.is_true(a:publish("room", {n = 3}))
        assert.equal('{"n":3}', json_field(wb:expect_text(), "message"))
        assert.equal(1, b:broker_state().reconnects)

        wb:close()
        a:close(1)
        b:close(1)
    end)

    it("has no state without a broker", function()
        local s = H.server()
        assert.equal("none", s:broker_state().state)
        s:close(1)
    end)
end)
