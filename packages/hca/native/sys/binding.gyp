{
  'targets': [
    {
      'target_name': 'ibal_sys',
      'sources': ['src/addon.cc', 'src/shm.cc', 'src/futex.cc', 'src/vm.cc', 'src/batch-socket.cc', 'src/wake-pipe.cc', 'src/loop-spin.cc', 'src/runs.cc'],
      'include_dirs': ["<!(node -p \"require('node-addon-api').include_dir\")", '../include'],
      'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS', 'NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS'],
      'cflags!': ['-fno-exceptions'],
      'cflags_cc!': ['-fno-exceptions'],
      'cflags_cc': ['-std=c++17', '-O2', '-Wall', '-Wextra', '-Wno-unused-parameter']
    }
  ]
}
