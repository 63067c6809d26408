"""Inference engines: the one place that makes ONNX Runtime sessions (threads, providers).

Nothing here imports rclpy.  The face detector and the classifier ask this module for sessions,
so every session of the process gets the same thread and provider policy.  ONNX Runtime and the
`onnx` package are optional: without them the detector runs in OpenCV's DNN module.
"""
import importlib.util
import os

ENGINE_NAMES = ('auto', 'onnxruntime', 'opencv')
ONNX_PIP_COMMAND = 'pip install onnxruntime==1.32.0 onnx==1.23.2'
PROVIDERS = ('CPUExecutionProvider',)


class InferenceEngineError(ValueError):
    """An engine is unknown or unavailable, or a model cannot be loaded into it."""


def onnxruntime_available() -> bool:
    """Return whether onnxruntime and onnx (needed to fix input shapes) are importable."""
    return all(importlib.util.find_spec(name) is not None for name in ('onnxruntime', 'onnx'))


def resolve_engine(name: str) -> str:
    """Return the engine 'auto' stands for here ('onnxruntime' if installed, else 'opencv').

    Raises InferenceEngineError for an unknown name, or 'onnxruntime' when it is missing.
    """
    if name not in ENGINE_NAMES:
        raise InferenceEngineError(
            f'unknown inference engine {name!r}; choose one of {", ".join(ENGINE_NAMES)}')
    if name == 'auto':
        return 'onnxruntime' if onnxruntime_available() else 'opencv'
    if name == 'onnxruntime' and not onnxruntime_available():
        raise InferenceEngineError(
            f"inference engine 'onnxruntime' requested but onnxruntime or onnx is not "
            f"installed: `{ONNX_PIP_COMMAND}`, or use 'opencv'")
    return name


def usable_cores() -> int:
    """Return the number of cores this process may run on (taskset / cgroup aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def with_input_shape(model_bytes: bytes, shape) -> bytes:
    """Return the ONNX model with its first input fixed to ``shape`` and no stale shapes.

    Files exported by old tools (CenterFace's) list their initializers as graph inputs, which
    stops ONNX Runtime from folding them, and fix the input to one size; this drops those
    inputs, sets the input dimensions and clears the recorded output / intermediate shapes, which
    ONNX Runtime infers again for the new size.
    """
    import onnx
    try:
        model = onnx.load_from_string(bytes(model_bytes))
    except Exception as error:  # noqa: B902 - protobuf raises assorted types for bad files
        raise InferenceEngineError(f'not an ONNX model ({error})') from None
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if not inputs:
        raise InferenceEngineError('the ONNX model has no input')
    del graph.input[:]
    graph.input.extend(inputs)
    dims = graph.input[0].type.tensor_type.shape.dim     # extend() copied the inputs
    if len(dims) != len(shape):
        raise InferenceEngineError(
            f'the ONNX model input has {len(dims)} dimensions, expected {len(shape)}')
    for dim, size in zip(dims, shape):
        dim.Clear()
        dim.dim_value = int(size)
    for output in graph.output:
        output.type.tensor_type.ClearField('shape')
    del graph.value_info[:]
    return model.SerializeToString()


def onnxruntime_session(model_bytes: bytes, num_threads: int = 1, what: str = 'model'):
    """Return an onnxruntime.InferenceSession for ``model_bytes`` on the CPU.

    ``num_threads``: intra-op threads (0 = all usable cores).  Idle worker threads sleep instead
    of spinning: spinning threads made torch 8-14x slower whenever other processes held the
    cores (BENCHMARKS.md), and the robot always runs other processes.
    Raises InferenceEngineError naming ``what`` when the model does not load.
    """
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(num_threads) or usable_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    options.log_severity_level = 3      # errors only: no warnings on stderr per session
    try:
        return onnxruntime.InferenceSession(bytes(model_bytes), sess_options=options,
                                            providers=list(PROVIDERS))
    except Exception as error:  # noqa: B902 - onnxruntime's pybind errors share no base class
        reason = ' '.join(str(error).split())[:300]
        raise InferenceEngineError(f'ONNX Runtime cannot load the {what} ({reason})') from None
