-- Feeds include/wsnotify_ffi.h to LuaJIT's ffi.cdef as it is, then opens the
-- built library: every function the file declares must resolve.
--   luajit check_luajit.lua FFI_HEADER LIBRARY
local ffi = require("ffi")
local header, lib = arg[1], arg[2]
local f = assert(io.open(header, "r"))
local text = f:read("*a")
f:close()
ffi.cdef(text)
local L = ffi.load(lib)
local n, failed = 0, 0
for name in text:gmatch("(wsn_[%w_]+)%s*%(") do
  n = n + 1
  local ok, err = pcall(function() return L[name] end)
  if not ok then
    print("declared but not resolved: " .. name .. " (" .. tostring(err) .. ")")
    failed = failed + 1
  end
end
if failed > 0 then
  print(("luajit: %d of %d functions unresolved"):format(failed, n))
  os.exit(1)
end
print(("luajit: %d functions declared, all resolved in %s"):format(
  n, ffi.string(L.wsn_version_string())))
