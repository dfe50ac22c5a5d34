"""``torch-nn``: idiomatic PyTorch, what a user would write instead of this suite.

``nn.Sequential`` of ``nn.Linear`` and ``nn.Sigmoid`` layers, the loss from
``nn.MSELoss``, gradients from autograd (``loss.backward()``) and the update
from ``torch.optim.SGD``: the textbook training loop, with nothing tuned. It is
the yardstick of issue 12 ("the fastest backend ≥ 1.15× idiomatic PyTorch"):
measure it beside the others in one process with ``pgdbench bench
--interleave --baseline torch-nn``.

Kept the same as every other backend, so that only the implementation differs:

* the initial parameters (the core's Glorot draw; ``nn.Linear`` stores its
  weight as (out, in), so it holds Wᵀ of the suite's (in, out) matrices);
* the loss (1/(2B)) Σ‖y − a_L‖²: ``nn.MSELoss(reduction="sum")`` times 1/(2B).
  The default ``reduction="mean"`` divides by B·n_out instead, which would be
  the same training only with the learning rate scaled by n_out/2; the
  scaling is written into the loss, where a user would put it;
* plain SGD (no momentum, no weight decay) with the learning rate of the run;
* the minibatches: ``X[idx]`` of the tensors loaded once, as a user holding
  the data in memory would index them (a ``DataLoader`` would add collation
  per example and only make this baseline slower).

Threads: ``torch.set_num_threads(T)`` for the duration of each call, as in the
``torch`` backend. ``-o device=cuda`` runs it on a GPU.
"""
from __future__ import annotations

import numpy as np

from implementations.torch_ref import cpu_blas, resolve_device, torch_threads
from pgdbench.core.model import Parameters, batch_bounds
from pgdbench.core.protocol import Option, Parallelism, Trainer, validate_batch


class TorchNNTrainer(Trainer):
    description = "idiomatic PyTorch: nn.Sequential(Linear, Sigmoid), autograd, MSELoss, optim.SGD (the yardstick)"
    parallelism = Parallelism.MATRIX
    serial_counterpart = "torch-nn"
    requires = ("torch",)
    options = {"device": Option("auto", choices=("auto", "cpu", "cuda"))}

    def __init__(self, spec, params, *, dtype=np.float32, threads=1, options=None):
        super().__init__(spec, params, dtype=dtype, threads=threads, options=options)
        import torch
        from torch import nn

        self.torch = torch
        self.device = resolve_device(torch, self.opts["device"], self.name)
        tdtype = torch.float32 if self.dtype == np.float32 else torch.float64
        layers = []
        for n_in, n_out in spec.shapes:
            layers += [nn.Linear(n_in, n_out), nn.Sigmoid()]
        self.model = nn.Sequential(*layers).to(device=self.device, dtype=tdtype)
        self.linears = [m for m in self.model if isinstance(m, nn.Linear)]
        self.set_weights(params)
        self.loss_fn = nn.MSELoss(reduction="sum")
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)

    def _threads(self, grad: bool):
        return torch_threads(self.torch, self.threads, grad)

    def _sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def _tensor(self, array):
        return self.torch.tensor(np.asarray(array, dtype=self.dtype), device=self.device)

    def load_data(self, X, Y):
        validate_batch(X, Y, self.spec)
        self.X, self.Y = self._tensor(X), self._tensor(Y)
        self._sync()

    def _loss(self, x, y):
        return self.loss_fn(self.model(x), y) / (2 * x.shape[0])   # (1/(2B)) Σ‖y − a_L‖²

    def train_epoch(self, order, batch_size, learning_rate, progress=None):
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        order_t = self.torch.as_tensor(np.asarray(order, dtype=np.int64)).to(self.device)
        with self._threads(grad=True):
            for start, stop in batch_bounds(len(order), batch_size):
                idx = order_t[start:stop]
                self.optimizer.zero_grad()
                self._loss(self.X[idx], self.Y[idx]).backward()
                self.optimizer.step()
                if progress is not None:
                    progress(stop - start)
            self._sync()

    # -- state and checks -----------------------------------------------------
    def get_weights(self):
        return Parameters([m.weight.detach().T.cpu().numpy().copy() for m in self.linears],
                          [m.bias.detach().cpu().numpy().copy() for m in self.linears])

    def set_weights(self, params):
        params.check_against(self.spec)
        with self.torch.no_grad():
            for m, W, b in zip(self.linears, params.weights, params.biases):
                m.weight.copy_(self.torch.as_tensor(np.asarray(W, dtype=self.dtype).T))
                m.bias.copy_(self.torch.as_tensor(np.asarray(b, dtype=self.dtype)))

    def loss_and_gradients(self, X, Y):
        validate_batch(X, Y, self.spec)
        x, y = self._tensor(X), self._tensor(Y)
        with self._threads(grad=True):
            self.model.zero_grad(set_to_none=True)
            loss = self._loss(x, y)
            loss.backward()
        to_np = lambda t: t.detach().cpu().numpy().copy()  # noqa: E731
        return float(loss.item()), Parameters([to_np(m.weight.grad.T) for m in self.linears],
                                              [to_np(m.bias.grad) for m in self.linears])

    def predict(self, X):
        X = np.asarray(X, self.dtype)
        out = np.empty((len(X), self.spec.n_outputs), self.dtype)
        with self._threads(grad=False):
            for start, stop in batch_bounds(len(X), 1024):
                out[start:stop] = self.model(self._tensor(X[start:stop])).cpu().numpy()
        return out

    def metadata(self):
        t = self.torch
        meta = {"torch": t.__version__, "device": str(self.device),
                "style": "nn.Sequential + autograd + MSELoss(sum)/(2B) + optim.SGD"}
        if self.device.type == "cuda":
            meta["gpu"] = t.cuda.get_device_name(self.device)
        else:
            meta["intra_op_threads"] = self.threads
            meta["blas"] = cpu_blas(t)
        return meta
