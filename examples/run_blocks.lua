-- Extract the code blocks from an assistant message and run them with
-- LocalExecutor, printing AutoGen's result text.
-- Run: make demo   (or: eval "$(make -s paths)"; lua5.4 examples/run_blocks.lua)
local agentbox = require("agentbox")

local message = [[
Let me check the Python version and list the working directory.

```python
import platform, sys
print("python", platform.python_version())
print("sum of squares:", sum(i * i for i in range(10)))
```

Then some shell:

```sh
echo "hello from sh, in $(pwd)"
ls
```
]]

local blocks = agentbox.code.extract(message)
print(("found %d code blocks: %s, %s"):format(#blocks, blocks[1].lang, blocks[2].lang))

local ex <close> = agentbox.LocalExecutor{ work_dir = "coding", timeout = 30 }
local result = ex:execute(blocks)
print(agentbox.code.format_result(result))
