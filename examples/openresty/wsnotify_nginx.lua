-- The wsnotify engine inside nginx (lua-nginx-module): started in one
-- worker (ngx.worker.id() == 0) from init_worker, after the fork; its
-- events are pulled by a timer loop on that worker, so handlers run in
-- nginx's own thread and nothing blocks the event loop: dispatch() never
-- waits, publish never waits for room (a client without room is closed
-- at once: drop_on_backpressure), and the loop sleeps with ngx.sleep.
--
-- Publishing from any worker: publish() in the engine's worker goes
-- straight to the engine; in the others it is queued in the shared dict
-- "wsnotify" and the engine's worker takes it on its next turn.
--
-- Reload and quit: the exiting worker's loop sees ngx.worker.exiting(),
-- shuts its engine down (clients get 1001 and reconnect), and the new
-- worker 0 starts its engine on the same port, retrying with backoff
-- while the old one still holds it.
--
-- The loop only yields between turns while events come, and sleeps from
-- BUSY_SLEEP doubling to IDLE_SLEEP while none do: lua-nginx-module cannot wait on the
-- engine's event fd, so an idle engine answers within IDLE_SLEEP (17 ms
-- median measured) at ~0.4% of a core for the idle workers.
local wsnotify = require "wsnotify"
local protocol = require "chat_protocol"

local M = {}

local ENGINE_WORKER = 0
local QUEUE = "publish"
local BUSY_SLEEP = 0.001  -- the first sleep once no event came
local IDLE_SLEEP = 0.02   -- at most this long asleep while nothing comes
local QUEUE_BATCH = 1000  -- queued publishes taken per turn
local SHUTDOWN_TIMEOUT = 2

local server
local config

local LEVELS = {INFO = ngx.NOTICE, DEBUG = ngx.DEBUG, WARN = ngx.WARN,
                ERROR = ngx.ERR}

local function log(level, fmt, ...)
    ngx.log(LEVELS[level] or ngx.INFO, "chat: ", string.format(fmt, ...))
end

local function logger(level, line, source)
    ngx.log(LEVELS[level:upper()] or ngx.ERR, source or "wsnotify", ": ", line)
end

-- A queued publish is "<length of channel>:" .. channel .. JSON text.
local function encode_item(channel, json)
    return #channel .. ":" .. channel .. json
end

local function drain_queue(shared)
    local n = 0
    while n < QUEUE_BATCH do
        local item = shared:lpop(QUEUE)
        if not item then break end
        n = n + 1
        local len, rest = item:match("^(%d+):()")
        if len then
            local stop = rest + tonumber(len)
            local ok, err, code = server:publish(item:sub(rest, stop - 1),
                                                 item:sub(stop))
            if code == "WSN_EAGAIN" then
                -- No room now: it goes back first in line for the next turn.
                shared:lpush(QUEUE, item)
                return n - 1
            end
            if not ok then log("INFO", "queued publish failed: %s", err) end
        end
    end
    return n
end

local function stop_engine()
    if not server then return end
    local s = server
    server = nil
    s:shutdown(SHUTDOWN_TIMEOUT)
    s:close()
    log("INFO", "engine stopped (worker exiting)")
end

local function loop(premature)
    if premature then return stop_engine() end
    local shared = ngx.shared.wsnotify
    local sleep = BUSY_SLEEP
    while server do
        if ngx.worker.exiting() then return stop_engine() end
        local n = server:dispatch(256) + drain_queue(shared)
        if server.stopped then
            log("INFO", "engine stopped")
            server:close()
            server = nil
            return
        end
        if n > 0 then
            -- More may be queued: yield to nginx's event loop (the proxy
            -- moves the engine's frames) and come straight back.
            sleep = BUSY_SLEEP
            ngx.sleep(0)
        else
            ngx.sleep(sleep)
            sleep = math.min(sleep * 2, IDLE_SLEEP)
        end
    end
end

local function start_engine(premature, attempt)
    if premature or ngx.worker.exiting() then return end
    local s, err = wsnotify.new_server{
        host = "127.0.0.1", port = config.engine_port, path = "/ws",
        -- Nothing may block the worker: publishes never wait for room
        -- (WSN_EAGAIN instead), and a browser too slow to keep up is
        -- closed rather than holding up the others.
        nonblocking = true, drop_on_backpressure = true,
        broker = config.broker or "",
        authenticate = config.auth_token ~= nil,
        metrics = config.metrics == true, metrics_token = config.metrics_token or "",
        client_rate = config.client_rate, client_burst = config.client_burst, -- nil: default
        log_level = config.verbose and 4 or 3, logger = logger,
    }
    if s then
        protocol.attach(s, log, config.verbose)
        if config.auth_token then
            s:on_upgrade(protocol.token_check(config.auth_token, log, config.verbose))
        end
        local ok, serr, code = s:start()
        if ok then
            server = s
            log("INFO", "engine on 127.0.0.1:%d in worker %d (pid %d)",
                s.port, ngx.worker.id(), ngx.worker.pid())
            assert(ngx.timer.at(0, loop))
            return
        end
        s:close()
        err = serr
        -- After a reload the old worker may still hold the port.
        if code == "WSN_EIO" and attempt < 100 then
            assert(ngx.timer.at(math.min(0.05 * 2 ^ math.min(attempt, 4), 1),
                                start_engine, attempt + 1))
            return
        end
    end
    log("ERROR", "engine did not start: %s", err)
end

function M.init_worker(cfg)
    config = cfg
    if ngx.worker.id() ~= ENGINE_WORKER then return end
    assert(ngx.timer.at(0, start_engine, 0))
end

-- publish(channel, json_text) from any worker: true | nil, err
function M.publish(channel, json)
    if server then return server:publish(channel, json) end
    local ok, err = ngx.shared.wsnotify:rpush(QUEUE, encode_item(channel, json))
    if not ok then return nil, "queue: " .. tostring(err) end
    return true
end

-- POST /publish?channel=NAME, body: JSON text.
function M.publish_handler()
    ngx.header["X-Worker"] = tostring(ngx.worker.pid())
    if ngx.req.get_method() ~= "POST" then return ngx.exit(405) end
    local channel = ngx.var.arg_channel
    if not channel or channel == "" then return ngx.exit(400) end
    channel = ngx.unescape_uri(channel)
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then return ngx.exit(400) end
    local ok, err, code = M.publish(channel, body)
    if not ok then
        -- No room (a nonblocking publish): the caller may retry.
        local status = code == "WSN_EAGAIN" and 503 or 400
        ngx.status = status
        ngx.say(err)
        return ngx.exit(status)
    end
    ngx.status = 202
    ngx.say("queued")
end

return M
