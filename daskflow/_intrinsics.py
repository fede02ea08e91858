"""LLVM intrinsics for Numba kernels that Numba does not expose itself."""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch"]


@intrinsic
def prefetch(typingctx: Any, array: Any, row: Any, col: Any) -> Any:
    """Ask the CPU to start loading ``array[row, col]``'s cache line (a hint; no effect on results).

    Gathering factor rows through an index (``Y[indices[k]]``) defeats the hardware
    prefetcher, so each row would cost a trip to memory; prefetching a few entries ahead
    overlaps those trips with the arithmetic on the current row. Compiles to
    ``llvm.prefetch`` (read, high temporal locality, data cache).
    """
    signature = types.void(array, row, col)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        array_type, row_type, col_type = sig.args
        value, i, j = args
        array_struct = context.make_array(array_type)(context, builder, value)
        i = context.cast(builder, i, row_type, types.intp)
        j = context.cast(builder, j, col_type, types.intp)
        pointer = cgutils.get_item_pointer2(
            context, builder, array_struct.data, cgutils.unpack_tuple(builder, array_struct.shape),
            cgutils.unpack_tuple(builder, array_struct.strides), array_type.layout, [i, j])
        byte_pointer = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        function_type = ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32])
        function = cgutils.get_or_insert_function(builder.module, function_type, "llvm.prefetch.p0")
        builder.call(function, [builder.bitcast(pointer, byte_pointer), int32(0), int32(3), int32(1)])
        return context.get_dummy_value()

    return signature, codegen
