-- The module: version, options by name, errors, JSON rules, and the HTTP
-- side of a server (page, health check, 404, origin check).
local H = require "spec.helper"
local wsnotify = require "wsnotify"

local ROOT = os.getenv("WSN_ROOT") or "../.."

describe("the module", function()
    it("names the library's version", function()
        assert.matches("^%d+%.%d+%.%d+$", wsnotify.version)
        assert.equal(0, math.floor(wsnotify.version_number / 10000))
    end)

    it("lists every core option with its default", function()
        local by = {}
        for _, o in ipairs(wsnotify.options()) do by[o.name] = o end
        assert.equal(8080, by.port.default)
        assert.equal("127.0.0.1", by.host.default)
        assert.equal(10, by.write_wait.default) -- seconds
        assert.equal("duration", by.write_wait.type)
        assert.is_false(by.compression.default)
        assert.equal(65535, by.port.max)
        local names = wsnotify.option_names()
        assert.equal(#wsnotify.options(), #names)
        assert.equal("host", names[1])
    end)

    it("gives error texts by code", function()
        assert.equal("invalid argument", wsnotify.strerror("WSN_EINVAL"))
        assert.equal(wsnotify.strerror(-1), wsnotify.strerror("WSN_EINVAL"))
    end)

    it("takes options by name and refuses bad ones", function()
        local s, err, code = wsnotify.new_server{port = 70000}
        assert.is_nil(s)
        assert.equal("WSN_ERANGE", code)
        assert.matches("port is out of range %(0 to 65535%)", err)
        s, err, code = wsnotify.new_server{ping_period = 60, pong_wait = 30}
        assert.is_nil(s)
        assert.equal("WSN_EINVAL", code)
        assert.has_error(function() wsnotify.new_server{no_such = 1} end)
        assert.has_error(function() wsnotify.new_server{port = "80"} end)
        assert.has_error(function() wsnotify.new_server{compression = 1} end)
        assert.has_error(function() wsnotify.new_server{write_wait = "1s"} end)
        assert.has_error(function() wsnotify.new_server("port=1") end)
        s, err, code = wsnotify.new_server{compression = true}
        assert.is_nil(s) -- refused by this core (see include/wsnotify.h)
        assert.equal("WSN_EUNSUPPORTED", code)
        assert.has_error(function() wsnotify.new_server{nonblocking = 1} end)
        assert.has_error(function() wsnotify.new_server{events_on_io_thread = true} end)
        s = assert(wsnotify.new_server{port = 0, write_wait = 0.5, nonblocking = true,
                                       allowed_origins = {"http://a", "http://b"}})
        assert.equal(-1, s.port)
        assert.is_false(s.started)
        s:close()
    end)

    it("encodes Lua values as lua-cjson does", function()
        local enc = wsnotify.json_encode
        assert.equal('[1,2,3]', enc({1, 2, 3}))
        assert.equal('{}', enc({}))
        assert.equal('[]', enc(wsnotify.empty_array))
        assert.equal('[]', enc(setmetatable({}, wsnotify.array_mt)))
        local sparse = enc({[1] = "a", [3] = "b"}) -- keys in table order
        assert.is_true(sparse == '{"1":"a","3":"b"}' or sparse == '{"3":"b","1":"a"}')
        assert.equal('null', enc(wsnotify.null))
        assert.equal('[0.1,-2,1e+300,true]', enc({0.1, -2, 1e300, true}))
        assert.equal('"\\"\\\\\\n\\u0001\195\169"', enc('"\\\n\1\195\169'))
        assert.has_error(function() enc("\255") end)
        assert.has_error(function() enc({[true] = 1}) end)
        assert.has_error(function() enc(math.huge) end)
        local v = wsnotify.json_decode('{"a":[],"b":[1,{"c":null}]}')
        assert.equal('[]', enc(v.a))
        assert.equal(wsnotify.null, v.b[2].c)
        local ok, _, code = wsnotify.json_decode("{nope")
        assert.is_nil(ok)
        assert.equal("WSN_EJSON", code)
        assert.equal("x\"y", wsnotify.json_get_string('{"k":"x\\"y"}', "k"))
        ok, _, code = wsnotify.json_get_string('{"k":1}', "k")
        assert.equal("WSN_ETYPE", code)
    end)
end)

describe("JSON the core's writer decides", function()
    local enc = wsnotify.json_encode
    local function err_of(v)
        local ok, err = pcall(enc, v)
        assert.is_false(ok)
        return err
    end
    local function nest(n)
        local v = 1
        for _ = 1, n do v = {v} end
        return v
    end

    it("refuses what JSON cannot hold with the core's code", function()
        assert.matches("cannot encode a string that is not UTF%-8 as JSON %[WSN_EINVAL%]",
                       err_of("a\255"))
        -- a UTF-16 surrogate written as UTF-8 is not UTF-8 either
        assert.matches("not UTF%-8 as JSON %[WSN_EINVAL%]", err_of({"\237\160\128"}))
        assert.matches("cannot encode a table key that is not UTF%-8 as JSON %[WSN_EINVAL%]",
                       err_of({["k\192"] = 1}))
        assert.matches("cannot encode NaN as JSON %[WSN_EINVAL%]", err_of({x = 0 / 0}))
        assert.matches("cannot encode an infinity as JSON %[WSN_EINVAL%]", err_of(-math.huge))
        assert.matches("cannot encode a function as JSON", err_of({f = print}))
    end)

    it("nests 1,000 levels and refuses the next with WSN_ELIMIT", function()
        assert.equal(string.rep("[", 1000) .. "1" .. string.rep("]", 1000), enc(nest(1000)))
        assert.matches("nested deeper than 1000 levels .*%[WSN_ELIMIT%]", err_of(nest(1001)))
        local t = {}
        t.self = t
        assert.matches("a table that contains itself.*%[WSN_ELIMIT%]", err_of(t))
    end)

    it("writes strings as the core escapes them, and starts afresh after a refusal", function()
        assert.equal('"a\\u0000b\\t\\u001F\195\169"', enc("a\0b\t\31\195\169"))
        err_of({1, 2, "\255"})
        assert.equal('{"ok":[1,2]}', enc({ok = {1, 2}}))
    end)
end)

describe("a server's HTTP side", function()
    local server

    before_each(function()
        server = H.server{static_dir = ROOT .. "/examples/chat"}
    end)
    after_each(function() server:close(1) end)

    it("serves the page, /healthz and 404s", function()
        local status, body = H.http_get(server.port, "/")
        assert.equal(200, status)
        assert.matches('id="log"', body)
        assert.equal(200, (H.http_get(server.port, "/healthz")))
        assert.equal(404, (H.http_get(server.port, "/missing.html")))
    end)

    it("checks the origin of upgrades", function()
        local p = server.port
        local ws = assert(H.connect(server, {origin = "http://127.0.0.1:" .. p}))
        ws:close()
        local no, status = H.connect(server, {origin = "http://evil.example"})
        assert.is_nil(no)
        assert.matches(" 403", status)
        no, status = H.connect(server, {path = "/other"})
        assert.is_nil(no)
        assert.matches(" 404", status)
    end)
end)
