-- agentbox.core's own shape: what core.so exports, the handle base every
-- handle type shares (handle.c), and option numbers that would be undefined
-- behaviour in C (a NaN converted to an integer) refused at the call.
local core = require("agentbox.core")
local H = require("spec.support.helpers")

local SO = assert(package.searchpath("agentbox.core", package.cpath), "agentbox.core not found")
local ENV = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME") or "/tmp" }

-- one live handle of each type, made without any I/O of note
local KINDS = {
  timer = function() return core.timer(30) end,
  proc = function() return assert(core.spawn{ argv = { "/bin/sleep", "30" }, env = ENV, timeout = 60 }) end,
  http = function() return core.http{ url = "http://127.0.0.1:9/" } end,
}

describe("agentbox.core", function()
  it("exports only the embedding API (agentbox.h) from core.so", function()
    local r = H.run({ "nm", "-D", "--defined-only", SO })
    assert.equal(0, r.exit_code, r.output)
    local names = {}
    for name in r.stdout:gmatch("%S+ %a (%S+)\n") do
      -- a sanitized build also defines the sanitizers' own (__asan_..., _fini)
      if not name:match("^_") then names[#names + 1] = name end
    end
    table.sort(names)
    assert.same({ "agentbox_fd", "agentbox_step", "agentbox_timeout", "luaopen_agentbox_core" }, names)
  end)

  it("an embedder links core.so with agentbox.h; fd and timeout say -1 before require", function()
    local dir = H.tmpdir("embed")
    H.write(dir .. "/e.c", [[
      #include <stdio.h>
      #include <lauxlib.h>
      #include <lualib.h>
      #include "agentbox.h"
      int main(void) {
        lua_State *L = luaL_newstate();
        luaL_openlibs(L);
        printf("before: %d %d %d\n", agentbox_fd(L), agentbox_timeout(L), agentbox_step(L, 0));
        if (luaL_dostring(L, "require 'agentbox'") != LUA_OK) { printf("%s\n", lua_tostring(L, -1)); return 1; }
        printf("after: %d %d %d\n", agentbox_fd(L) >= 0, agentbox_timeout(L), agentbox_step(L, 0));
        lua_close(L);
        return 0;
      }
    ]])
    local cc = H.run({ "cc", "-std=c11", "-Wall", "-Werror", "-I/usr/include/lua5.4", "-Isrc", "-o", dir .. "/e", dir .. "/e.c",
                       SO, "-llua5.4", "-Wl,--allow-shlib-undefined", "-Wl,-rpath," .. SO:match("^(.*)/") })
    assert.equal(0, cc.exit_code, cc.output)
    local r = H.run({ dir .. "/e" }, { env = H.lua_env() })
    H.rm_rf(dir)
    assert.equal(0, r.exit_code, r.output)
    assert.equal("before: -1 -1 -1\nafter: 1 -1 0\n", r.stdout)
  end)

  for kind, make in pairs(KINDS) do
    describe("agentbox." .. kind, function()
      it("has the handle base's metatable: close is also __gc and __close", function()
        local h = make()
        local mt = getmetatable(h)
        assert.equal("function", type(mt.__index.close))
        assert.equal(mt.__index.close, mt.__gc)
        assert.equal(mt.__index.close, mt.__close)
        h:close()
      end)

      it("names itself, is idempotent to close, and refuses use after close", function()
        local h = make()
        assert.matches("^agentbox%." .. kind .. " %(0x%x+%)$", tostring(h))
        h:close()
        h:close()
        assert.equal("agentbox." .. kind .. " (closed)", tostring(h))
        local ok, err = pcall(h.done, h)
        assert.is_false(ok)
        assert.matches("attempt to use a closed agentbox%." .. kind, err)
      end)

      it("is closed by a to-be-closed variable", function()
        local kept
        do
          local h <close> = make()
          kept = h
        end
        assert.equal("agentbox." .. kind .. " (closed)", tostring(kept))
      end)
    end)
  end

  it("a handle type's __tostring given another value raises instead of reading it", function()
    -- in a nested Lua: reading a table as a handle would crash the process
    local r = H.lua([[
      local core = require("agentbox.core")
      local t = core.timer(1)
      local ok, err = pcall(getmetatable(t).__tostring, {})
      io.write(tostring(ok), " ", tostring(err))
    ]])
    assert.equal(0, r.exit_code, r.output)
    assert.matches("^false .*agentbox%.timer expected", r.stdout)
  end)

  it("step returns a handle that had activity once, and not after it is collected", function()
    local t = core.timer(0)
    local got = core.step(100)
    assert.same({ t }, got)
    assert.same({}, core.step(0))
    t:close()
    -- a timer that fires after its handle is gone is not returned
    core.timer(0)
    collectgarbage()
    collectgarbage()
    assert.same({}, core.step(10))
  end)

  describe("refuses a NaN where C would convert it to an integer", function()
    local nan = 0 / 0
    local cases = {
      ["core.timer"] = function() return core.timer(nan) end,
      ["core.spawn timeout"] = function() return core.spawn{ argv = { "/bin/true" }, env = ENV, timeout = nan } end,
      ["core.spawn max_output"] = function() return core.spawn{ argv = { "/bin/true" }, env = ENV, max_output = nan } end,
      ["core.http timeout"] = function() return core.http{ url = "http://127.0.0.1:9/", timeout = nan } end,
    }
    for name, f in pairs(cases) do
      it(name, function()
        local ok, err = pcall(f)
        assert.is_false(ok, name .. " accepted NaN")
        assert.matches("got nan", err)
      end)
    end

    it("and takes math.huge as 'practically never'", function()
      local t = core.timer(math.huge)
      assert.is_false(t:done())
      t:close()
      local r = H.run({ "/bin/echo", "ok" }, { timeout = math.huge })
      assert.equal(0, r.exit_code)
    end)
  end)
end)
