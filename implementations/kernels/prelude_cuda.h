/* CUDA prelude for the shared ("CLUDA") kernel dialect of mlp_step.cluda.
 *
 * The kernel source never names CUDA or OpenCL directly; it uses the macros
 * below, which prelude_opencl.h defines for OpenCL. Concatenating this file
 * and the kernel source gives a plain .cu file: `nvcc --ptx` compiles it, and
 * PyCUDA's SourceModule builds it with no_extern_c=True (KERNEL already says
 * extern "C", so the kernels keep unmangled names).
 */
#define KERNEL extern "C" __global__
#define WITHIN_KERNEL __device__
#define INLINE __forceinline__
#define GLOBAL_MEM
#define LOCAL_MEM __shared__
#define LOCAL_MEM_ARG
#define LOCAL_BARRIER __syncthreads()
#define local_barrier() __syncthreads()

#define LID_0 ((int)threadIdx.x)
#define LID_1 ((int)threadIdx.y)
#define LID_2 ((int)threadIdx.z)
#define GID_0 ((int)blockIdx.x)
#define GID_1 ((int)blockIdx.y)
#define GID_2 ((int)blockIdx.z)
#define LSIZE_0 ((int)blockDim.x)
#define LSIZE_1 ((int)blockDim.y)
#define LSIZE_2 ((int)blockDim.z)
#define NUM_GROUPS_0 ((int)gridDim.x)
#define NUM_GROUPS_1 ((int)gridDim.y)
#define NUM_GROUPS_2 ((int)gridDim.z)
