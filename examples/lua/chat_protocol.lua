-- The chat protocol of the wsnotify examples, for any Lua host of the
-- engine: examples/lua/chat.lua (standalone) and examples/openresty
-- (inside nginx). See examples/lua/chat.lua for the protocol.
--
-- Both hosts make their server with drop_on_backpressure and nonblocking
-- (docs/api.md, "Slow clients and handlers"): no client can make these
-- handlers wait for another.
--
--   require("chat_protocol").attach(server, log)
--
-- log(level, fmt, ...) writes a line; level is "INFO" or "DEBUG" (DEBUG
-- lines only come with verbose = true).
local wsnotify = require "wsnotify"

local M = {}

function M.attach(server, log, verbose)
    local function debug_log(fmt, ...)
        if verbose then log("DEBUG", fmt, ...) end
    end

    -- The host's server is nonblocking: a publish the engine refuses for
    -- room (WSN_EAGAIN: the server as a whole is behind) is not retried.
    -- Such refusals come many at once, and a line for each would flood the
    -- log: they are debug lines.
    local function log_failure(code, fmt, ...)
        if code == "WSN_EAGAIN" then debug_log(fmt, ...) else log("INFO", fmt, ...) end
    end

    -- Replies are written as text, not from a Lua table, so that their keys
    -- come in the C example's order.
    local function reply(server, client, channel, json, reply_to)
        local ok, err, code = server:publish_to_client(client, channel, json,
                                                       "json", nil, reply_to)
        if not ok then log_failure(code, "reply to %s failed: %s", client.id, err) end
    end

    -- Unlike the Go original, which only logs, tells the client why its
    -- request failed. The envelope's channel is "": the channel name may be
    -- what was wrong.
    local function reply_error(server, client, channel, code, reply_to)
        reply(server, client, "", '{"status":"error","channel":'
              .. wsnotify.json_encode(channel) .. ',"error":'
              .. wsnotify.json_encode(wsnotify.strerror(code)) .. "}", reply_to)
    end

    local function handle_subscribe(server, client, msg)
        local channel = wsnotify.json_get_string(msg.raw, "channel")
        if not channel then return end -- no channel string: ignored, as in Go
        local ok, err, code = server:subscribe(client, channel)
        if not ok then
            log("INFO", "subscription failed for %s to '%s': %s", client.id,
                channel, err)
            reply_error(server, client, channel, code, msg.message_id)
            return
        end
        debug_log("client %s subscribed to '%s'", client.id, channel)
        reply(server, client, channel, '{"status":"subscribed","channel":'
              .. wsnotify.json_encode(channel) .. "}", msg.message_id)
    end

    -- Forwards the message as the client sent it: publishing the message
    -- object passes its payload, which the engine checked on the way in,
    -- without a second check (no decode, encode or validation per
    -- broadcast). A broadcast that was not accepted (no room included) is
    -- answered with the error.
    local function handle_broadcast(server, client, msg)
        if msg.channel == "" then return end
        local ok, err, code = server:publish(msg.channel, msg)
        -- WSN_EBROKER: Redis is down; this server's members got it (the
        -- broker handler said so).
        if not ok and code ~= "WSN_EBROKER" then
            log_failure(code, "broadcast from %s to '%s' failed: %s", client.id,
                        msg.channel, err)
            reply_error(server, client, msg.channel, code, msg.message_id)
        end
    end

    server:on_broker(function(state, why)
        log("INFO", "broker %s%s", state, why ~= "" and ": " .. why or "")
    end)

    server:on_connect(function(client)
        debug_log("client connected: %s from %s (%d connected)", client.id,
                  client.remote_address, server:connected_clients() or 0)
    end)
    server:on_disconnect(function(client)
        debug_log("client disconnected: %s (%d connected)", client.id,
                  server:connected_clients() or 0)
    end)
    server:on_message(function(client, msg)
        debug_log("message from %s: type=%s, channel=%s", client.id, msg.type,
                  msg.channel)
        -- The chat protocol is JSON objects with an "action"; only it (and
        -- "channel" to subscribe) is read, so no message is decoded.
        if msg.type ~= "json" then return end
        local action = wsnotify.json_get_string(msg.raw, "action")
        if action == "subscribe" then
            handle_subscribe(server, client, msg)
        elseif action == "broadcast" then
            handle_broadcast(server, client, msg)
        end
    end)
end

-- The --auth-token check (authenticate = true): an upgrade carries
-- ?token=T or "Authorization: Bearer T", else 401. A real server would
-- verify a JWT or look a session up here (and may answer later with
-- req:accept / req:reject).
function M.token_check(want, log, verbose)
    return function(req)
        local given = req:query_arg("token") or req:bearer_token() or ""
        -- compared without stopping at the first difference
        local diff = #given == #want and 0 or 1
        for k = 1, #want do
            if given:byte(k) ~= want:byte(k) then diff = 1 end
        end
        if diff == 0 then return true end
        if verbose then
            log("DEBUG", "upgrade from %s refused: bad or missing token", req.peer)
        end
        return {status = 401, body = "bad or missing token"}
    end
end

return M
