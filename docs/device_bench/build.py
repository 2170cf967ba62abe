"""Build mmcv_focal_ext into /tmp/focal_build (on the GPU machine)."""
import os, sys, time
from torch.utils.cpp_extension import load
here = os.path.dirname(os.path.abspath(__file__))
csrc = os.path.join(here, '..', 'site', 'mmcv', 'ops', 'csrc')
os.environ.setdefault('TORCH_CUDA_ARCH_LIST', '9.0')
os.makedirs('/tmp/focal_build', exist_ok=True)
t0 = time.time()
load(name='mmcv_focal_ext',
     sources=[os.path.join(here, 'binding.cpp'),
              os.path.join(csrc, 'pytorch', 'cuda', 'focal_loss_cuda.cu')],
     extra_include_paths=[os.path.join(csrc, 'common'),
                          os.path.join(csrc, 'common', 'cuda')],
     extra_cuda_cflags=['-DMMCV_WITH_CUDA'],
     extra_cflags=['-DMMCV_WITH_CUDA'],
     build_directory='/tmp/focal_build', verbose=True)
print(f'focal ext built in {time.time() - t0:.1f} s', flush=True)
