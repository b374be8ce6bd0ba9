// Package coredump keeps secrets out of core dumps: the credhelper
// binaries call Disable first thing, before they hold a token.
//
// On Linux, Disable marks the process not dumpable (PR_SET_DUMPABLE 0),
// which stops the kernel from writing a core whatever core_pattern says
// (a pipe to a crash collector included) and also keeps other processes
// of the same user from reading its memory through ptrace or
// /proc/PID/mem; it also sets the soft RLIMIT_CORE to 0. On macOS and the
// other Unix systems it sets the soft RLIMIT_CORE to 0 (there is no
// dumpable flag to clear). On Windows it does nothing: Windows writes no
// core files, and Windows Error Reporting's crash dumps are configured
// per machine (LocalDumps), which credhelper leaves to the administrator.
//
// The hard limit is left alone, so a program that credhelper exec runs
// may raise its own soft limit again (ulimit -c) if it wants cores.
package coredump
