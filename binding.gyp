{
  "targets": [
    {
      "target_name": "ipckit",
      "sources": [
        "native/addon.cc",
        "native/fd.cc",
        "native/readiness.cc",
        "native/wake.cc",
        "native/jobs.cc",
        "native/message-queue.cc",
        "native/shared-memory.cc",
        "native/lock.cc",
        "native/pipe.cc",
        "native/fifo.cc",
        "native/signal.cc",
        "native/socket.cc",
        "native/doorbell.cc",
        "native/ring.cc",
        "native/semaphore.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++20", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-exceptions"],
      "libraries": ["-lrt", "-lpthread", "-ldl"]
    }
  ]
}
