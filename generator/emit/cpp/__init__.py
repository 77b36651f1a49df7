"""Emitters of C++: the fused path's native CPU kernel (generator.emit.cpp.kernel), printed from the
same IR as the Python paths and compiled at run time by generator.runtime.native."""
