"""helixflow_local: the tools around the shipped package - the local stack (moto + our real Lambdas + the
local daemons) and the `helixflow` command line. Nothing here ships in the Lambda layer, the Phase 1 image or
a cluster job."""
