! The course's f, in Fortran, as a plain element function:
!
!     kpool jit examples/jit/seed.f90 --symbol f --map 1,2,3 --exec processes
!
! Compiled with -fwrapv (as the built-in kernels), so the sum wraps instead of overflowing.
! gfortran keeps the loop (vectorised), so this one really runs 10^7 trips per argument.
function f(x) bind(C, name="f") result(j)
    use, intrinsic :: iso_c_binding, only: c_int64_t
    implicit none
    integer(c_int64_t), value :: x
    integer(c_int64_t) :: j, i
    j = 0
    do i = 1, 10000000
        j = j + x * x
    end do
end function f
