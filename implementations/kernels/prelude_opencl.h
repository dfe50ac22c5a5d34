/* OpenCL prelude for the shared ("CLUDA") kernel dialect of mlp_step.cluda.
 *
 * Same macro names as prelude_cuda.h. float64 kernels need cl_khr_fp64
 * (PoCL on x86 has it); the backend checks the device before building them.
 */
#if defined(cl_khr_fp64)
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define KERNEL __kernel
#define WITHIN_KERNEL
#define INLINE inline
#define GLOBAL_MEM __global
#define LOCAL_MEM __local
#define LOCAL_MEM_ARG __local
#define LOCAL_BARRIER barrier(CLK_LOCAL_MEM_FENCE)
#define local_barrier() barrier(CLK_LOCAL_MEM_FENCE)

#define LID_0 ((int)get_local_id(0))
#define LID_1 ((int)get_local_id(1))
#define LID_2 ((int)get_local_id(2))
#define GID_0 ((int)get_group_id(0))
#define GID_1 ((int)get_group_id(1))
#define GID_2 ((int)get_group_id(2))
#define LSIZE_0 ((int)get_local_size(0))
#define LSIZE_1 ((int)get_local_size(1))
#define LSIZE_2 ((int)get_local_size(2))
#define NUM_GROUPS_0 ((int)get_num_groups(0))
#define NUM_GROUPS_1 ((int)get_num_groups(1))
#define NUM_GROUPS_2 ((int)get_num_groups(2))
