// The few parts of torch the kernels use, included instead of <torch/extension.h> (which brings the whole
// C++ frontend — autograd, nn, optim — and triples each kernel's compile time): tensors and the factories
// the kernels call, ATen's parallel_for, and pybind11 with torch's tensor type casters.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/utils/pybind.h>
