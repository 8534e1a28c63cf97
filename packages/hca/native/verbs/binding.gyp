{
  'targets': [
    {
      'target_name': 'ibal_verbs',
      'sources': ['src/addon.cc', 'src/wr.cc', 'src/context.cc', 'src/rdmacm.cc'],
      'include_dirs': ["<!(node -p \"require('node-addon-api').include_dir\")", '../include'],
      'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS', 'NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS'],
      'libraries': ['-libverbs', '-lrdmacm'],
      'cflags!': ['-fno-exceptions'],
      'cflags_cc!': ['-fno-exceptions'],
      'cflags_cc': ['-std=c++17', '-O2', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Wno-missing-field-initializers']
    }
  ]
}
