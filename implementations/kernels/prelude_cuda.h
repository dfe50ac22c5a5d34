/* CUDA prelude for the shared ("CLUDA") kernel dialect of the *.cluda sources.
 *
 * The kernel sources never name CUDA or OpenCL directly; they use the macros
 * below, which prelude_opencl.h defines for OpenCL. Concatenating the header
 * that tiled_kernels.kernel_source writes, this file and a kernel source gives
 * a plain .cu file: nvcc compiles it, NVRTC (CuPy's RawModule) compiles it
 * without any include, and PyCUDA's SourceModule builds it with
 * no_extern_c=True (KERNEL already says extern "C", so names stay unmangled).
 */
#define KERNEL extern "C" __global__
/* the work-group shape is fixed at compile time: tell ptxas how many threads a block has */
#define LAUNCH_BOUNDS(x, y) __launch_bounds__((x) * (y))
#define WITHIN_KERNEL __device__
#define INLINE __forceinline__
#define GLOBAL_MEM
#define LOCAL_MEM __shared__
#define LOCAL_MEM_ARG
#define LOCAL_ALIGN16 __align__(16)
#define local_barrier() __syncthreads()
#define UNROLL _Pragma("unroll")

#define LID_0 ((int)threadIdx.x)
#define LID_1 ((int)threadIdx.y)
#define GID_0 ((int)blockIdx.x)
#define GID_1 ((int)blockIdx.y)
#define GID_2 ((int)blockIdx.z)

/* Four consecutive REALs p[0..3] into d[0..3] (and back) as one 16-byte access where
 * the type allows it; p must be 16-byte aligned. double4 is deprecated in CUDA 13,
 * so doubles move as two double2. */
#if REAL_IS_DOUBLE
#define LOAD4(d, p) do { const double2 lo_ = ((const double2 *)(p))[0], hi_ = ((const double2 *)(p))[1]; \
    (d)[0] = lo_.x; (d)[1] = lo_.y; (d)[2] = hi_.x; (d)[3] = hi_.y; } while (0)
#define STORE4(p, d) do { ((double2 *)(p))[0] = make_double2((d)[0], (d)[1]); \
    ((double2 *)(p))[1] = make_double2((d)[2], (d)[3]); } while (0)
#else
#define LOAD4(d, p) do { const float4 v_ = *(const float4 *)(p); \
    (d)[0] = v_.x; (d)[1] = v_.y; (d)[2] = v_.z; (d)[3] = v_.w; } while (0)
#define STORE4(p, d) do { *(float4 *)(p) = make_float4((d)[0], (d)[1], (d)[2], (d)[3]); } while (0)
#endif
