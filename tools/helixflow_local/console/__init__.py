"""The local console: a read-only web page on 127.0.0.1 that shows the stack's executions the way the Step
Functions console does (list, state graph coloured by this execution, event history, state input/output, Lambda
logs, cluster jobs, links to what the run published). It reads everything through the AWS APIs (Step Functions,
S3, CloudWatch Logs) at one endpoint, so the same module reads a deployed stack with the user's credentials.
It never ships (tools/, not the layer)."""
