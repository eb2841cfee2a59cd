-- cli_filter.lua: sizes a --genie-phases step so that users need no other
-- flags:  srun --genie-phases=prefill:2,decode:1 python app.py  runs with
-- -n 4 (1 driver + 3 executors) and --gpus=3 (one GPU per slice).
--
-- Install: slurm.conf  CliFilterPlugins=cli_filter/lua  and this file as
-- cli_filter.lua next to slurm.conf, on every host users submit from
-- (docs/admin.md).  Slurm 22.05: the SPANK option is visible here only
-- inside slurm.json_cli_options(options), under "spank:genie-phases".
--
-- Keep the two settings below in step with the slurm group of genie.conf
-- (slices_per_gpu, driver_gpu): genie_spank.so maps slices to GPUs by those,
-- and refuses a step whose size does not match.

-- Slices of a phase that share one GPU: a default and per-phase overrides,
-- as slurm.slices_per_gpu in genie.conf.
local SLICES_PER_GPU = { default = 1 }
-- true if genie.conf sets slurm.driver_gpu = true (the driver gets a GPU).
local DRIVER_GPU = false

-- The spec as the plugin accepts it (the plugin has already refused a bad
-- one while srun read its options; anything odd here is left to it).
local function genie_size(spec)
   local tasks, gpus = 1, 0
   if DRIVER_GPU then gpus = 1 end
   -- "name:N" or "name:N+S" (S spare slices, started like the others)
   for name, n, s in string.gmatch(spec, "([a-z][a-z0-9_]*):(%d+)%+?(%d*)") do
      local slices = tonumber(n) + (tonumber(s) or 0)
      local per = SLICES_PER_GPU[name] or SLICES_PER_GPU.default
      tasks = tasks + slices
      gpus = gpus + math.ceil(slices / per)
   end
   return tasks, gpus
end

-- The options the user gave, as JSON.  Options left at their defaults are
-- absent from it, which is how an explicit -n is told from the default 1.
local function user_options(options)
   return slurm.json_cli_options(options) or ""
end

function slurm_cli_setup_defaults(options, early_pass)
   return slurm.SUCCESS
end

function slurm_cli_pre_submit(options, pack_offset)
   local json = user_options(options)
   local spec = string.match(json, '"spank:genie%-phases"%s*:%s*"([^"]*)"')
   if spec == nil or spec == "" then
      return slurm.SUCCESS
   end
   local tasks, gpus = genie_size(spec)
   local given = tonumber(string.match(json, '"ntasks"%s*:%s*"(%d+)"'))
   -- -n given by the user and different: say so rather than override it.
   if given ~= nil and given ~= tasks then
      slurm.log_error("genie: --genie-phases=%s needs -n %d, not -n %d; drop -n", spec, tasks, given)
      return slurm.ERROR
   end
   options["ntasks"] = tostring(tasks)
   -- GPUs the user asked for in any form are left alone; the plugin checks
   -- on each node that they are enough.
   if not (string.find(json, '"gpus"', 1, true) or string.find(json, '"gpus-per-node"', 1, true)
           or string.find(json, '"gres"', 1, true)) then
      options["gpus"] = tostring(gpus)
   end
   return slurm.SUCCESS
end

function slurm_cli_post_submit(offset, job_id, step_id)
   return slurm.SUCCESS
end
