// Loaded with --import into every Node worker, before its own code: a worker whose server has gone
// (even one killed with SIGKILL, which runs no cleanup) exits instead of holding its port. This runs
// only when the event loop turns; a worker stuck in a loop is killed by the host's reaper
// (src/process/group-reaper.ts).
process.once('disconnect', () => process.exit(0))
// Listening for 'disconnect' refs the IPC channel; unref it so that the channel alone never keeps
// a worker alive that would otherwise exit.
process.channel?.unref()
