-- TLS options by name and reload_tls() from Lua, with certificates made
-- by tests/tls/make_certs.sh (Debian's openssl). The specs' client is
-- luasocket, which has no TLS: wss:// itself is tested with real TLS
-- clients in C (tests/test_tls.c), Python and Node.
local H = require "spec.helper"
local wsnotify = require "wsnotify"

-- test.sh runs the specs from bindings/lua with WSN_ROOT set.
local make_certs = (os.getenv("WSN_ROOT") or "../..") .. "/tests/tls/make_certs.sh"

local function sh(cmd)
    local ok = os.execute(cmd)
    return ok == true or ok == 0
end

describe("TLS", function()
    local dir
    before_each(function()
        local p = io.popen("mktemp -d /tmp/wsn-lua-tls-XXXXXX")
        dir = p:read("*l")
        p:close()
        assert(sh("bash '" .. make_certs .. "' '" .. dir .. "'"))
    end)
    after_each(function() sh("rm -rf '" .. dir .. "'") end)

    it("serves with tls_cert and tls_key, and reloads them", function()
        assert(sh(string.format("cp %s/server.pem %s/live.pem && cp %s/server.key %s/live.key",
                                dir, dir, dir, dir)))
        local s = H.server{tls_cert = dir .. "/live.pem", tls_key = dir .. "/live.key"}
        assert.is_true(s:reload_tls())
        assert(sh(string.format("cp %s/server2.pem %s/live.pem && cp %s/server2.key %s/live.key",
                                dir, dir, dir, dir)))
        assert.is_true(s:reload_tls())
        -- A key that is not the certificate's: refused, nothing changes.
        assert(sh(string.format("cp %s/server.key %s/live.key", dir, dir)))
        local ok, err, code = s:reload_tls()
        assert.is_nil(ok)
        assert.equals("WSN_EIO", code)
        assert.truthy(err:find("is not the key of tls_cert", 1, true))
        s:close(1)
    end)

    it("reload_tls without TLS: WSN_EINVAL", function()
        local s = H.server()
        local ok, err, code = s:reload_tls()
        assert.is_nil(ok)
        assert.equals("WSN_EINVAL", code)
        assert.truthy(err:find("tls_cert", 1, true))
        s:close(1)
    end)

    it("names what is missing or wrong", function()
        local s, err = wsnotify.new_server{port = 0, tls_cert = dir .. "/server.pem"}
        assert.is_nil(s)
        assert.truthy(err:find("tls_cert is set but tls_key is not", 1, true))
        s = assert(wsnotify.new_server{host = "127.0.0.1", port = 0,
                                       tls_cert = dir .. "/missing.pem",
                                       tls_key = dir .. "/server.key"})
        local ok, code
        ok, err, code = s:start()
        assert.is_nil(ok)
        assert.equals("WSN_EIO", code)
        assert.truthy(err:find("missing.pem: No such file", 1, true))
    end)
end)
