// Binds mmcv 2.1.0's own sigmoid focal loss CUDA launchers
// (mmcv/ops/csrc/pytorch/cuda/focal_loss_cuda.cu) under the names and
// keyword arguments mmcv/ops/focal_loss.py calls.
#include <torch/extension.h>
using at::Tensor;
void SigmoidFocalLossForwardCUDAKernelLauncher(Tensor input, Tensor target,
                                               Tensor weight, Tensor output,
                                               const float gamma,
                                               const float alpha);
void SigmoidFocalLossBackwardCUDAKernelLauncher(Tensor input, Tensor target,
                                                Tensor weight,
                                                Tensor grad_input,
                                                const float gamma,
                                                const float alpha);
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("sigmoid_focal_loss_forward",
        &SigmoidFocalLossForwardCUDAKernelLauncher, py::arg("input"),
        py::arg("target"), py::arg("weight"), py::arg("output"),
        py::arg("gamma"), py::arg("alpha"));
  m.def("sigmoid_focal_loss_backward",
        &SigmoidFocalLossBackwardCUDAKernelLauncher, py::arg("input"),
        py::arg("target"), py::arg("weight"), py::arg("grad_input"),
        py::arg("gamma"), py::arg("alpha"));
}
