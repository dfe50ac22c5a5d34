/* OpenCL prelude for the shared ("CLUDA") kernel dialect of the *.cluda sources.
 *
 * Same macro names as prelude_cuda.h. float64 kernels need cl_khr_fp64
 * (PoCL on x86 has it); the backend checks the device before building them.
 */
#if REAL_IS_DOUBLE
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define KERNEL __kernel
#define LAUNCH_BOUNDS(x, y) __attribute__((reqd_work_group_size(x, y, 1)))
#define WITHIN_KERNEL
#define INLINE inline
#define GLOBAL_MEM __global
#define LOCAL_MEM __local
#define LOCAL_MEM_ARG __local
#define LOCAL_ALIGN16 __attribute__((aligned(16)))
#define local_barrier() barrier(CLK_LOCAL_MEM_FENCE)
/* A CPU device (PoCL) gains nothing from the unrolled register blocks and takes ~8 times longer to
 * build its work-group functions from them: OpenCLDevice builds with -DNO_UNROLL there. */
#ifdef NO_UNROLL
#define UNROLL
#else
#define UNROLL _Pragma("unroll")
#endif

#define LID_0 ((int)get_local_id(0))
#define LID_1 ((int)get_local_id(1))
#define GID_0 ((int)get_group_id(0))
#define GID_1 ((int)get_group_id(1))
#define GID_2 ((int)get_group_id(2))

#if REAL_IS_DOUBLE
#define REAL4 double4
#else
#define REAL4 float4
#endif
#define LOAD4(d, p) do { const REAL4 v_ = vload4(0, p); \
    (d)[0] = v_.s0; (d)[1] = v_.s1; (d)[2] = v_.s2; (d)[3] = v_.s3; } while (0)
#define STORE4(p, d) vstore4((REAL4)((d)[0], (d)[1], (d)[2], (d)[3]), 0, p)
