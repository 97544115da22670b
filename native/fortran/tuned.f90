! The tuned variants in Fortran 2008 (issue 13): the same contract, buffers and answers as
! the plain kernels of native/fortran/kernels.f90, written the way a careful Fortran author
! writes them for speed: array syntax over small fixed-size lane arrays, which gfortran
! vectorises for the build's -march (4 doubles a register under AVX2, 2 under SSE2), and
! integer bit tricks where Fortran has no shuffle. Built, like the plain ones, with -O3
! -ffp-contract=off -fwrapv; parentheses carry the plain kernels' evaluation order, so every
! variant here is bit-identical to the plain one.
!
! STREAM (triad) has no tuned Fortran variant. What makes the C, C++ and Rust ones faster
! is non-temporal stores (vmovntpd/movntpd), and no Fortran source construct makes gfortran
! 12 emit them (checked in the -O3 -ffp-contract=off -fwrapv -march=native assembly):
!  - `!$omp simd nontemporal(a)` (OpenMP 5.0, with -fopenmp-simd or -fopenmp) is accepted
!    and kept up to the omplower dump, then dropped by OpenMP expansion: the vectoriser
!    never sees it, the stores stay vmovupd;
!  - `!GCC$ ivdep`, `!GCC$ vector` only allow vectorising, which -O3 already does;
!    `!GCC$ builtin` declares SIMD clones of math functions, nothing about stores;
!  - array syntax, whole or in cache-sized blocks, compiles to the same vmovupd loop and
!    was no faster than the plain loop (20M elements).
! The one way found is not a construct but flags: GCC's loop-prefetch pass marks stores
! non-temporal with -fprefetch-loop-arrays, only in loops it does not vectorise
! (-fno-tree-vectorize), only with a tuning that enables software prefetch (-mtune=generic;
! znver3 does not), only for a large compile-time trip count, and for doubles only as
! scalar movntsd, which is AMD's SSE4A (no Intel CPU, not in -march=x86-64-v2). Flags that
! narrow and that CPU-dependent are not a tuned kernel, so there is none here.
!
! This module is separate from kp_kernels (no `use` between them, so the two files compile
! in any order); it repeats the few definitions both need.
module kp_tuned
    use, intrinsic :: iso_c_binding, only: c_int8_t, c_int32_t, c_int64_t, c_double, c_ptr, &
        c_associated, c_f_pointer
    implicit none
    private

    integer, parameter :: dp = c_double
    integer, parameter :: i8 = c_int64_t

    integer(c_int32_t), parameter :: KP_KERNEL_OK = 0
    integer(c_int32_t), parameter :: KP_KERNEL_BAD_ARGS = -1
    integer, parameter :: KP_MAX_BUFS = 4
    integer, parameter :: KP_PARTIAL_LEN = 4
    integer(c_int64_t), parameter :: KP_SPECTRALNORM_MAX_N = 2_c_int64_t**30
    integer(c_int64_t), parameter :: KP_MANDELBROT_MAX_N = 2_c_int64_t**32
    integer, parameter :: KP_FANNKUCH_MAX_N = 12
    integer(c_int64_t), parameter :: KP_PI_MAX_SAMPLES = 2_c_int64_t**62

    ! Mirror of struct kp_kargs, as in kp_kernels.
    type, bind(C) :: kp_kargs
        integer(c_int64_t) :: n
        integer(c_int64_t) :: items
        integer(c_int64_t) :: iparam(4)
        real(c_double) :: fparam(4)
        type(c_ptr) :: buf(KP_MAX_BUFS)
        integer(c_int64_t) :: len(KP_MAX_BUFS)
        type(c_ptr) :: partial
    end type kp_kargs

    integer(i8), parameter :: SM_GAMMA = -7046029254386353131_i8
    integer(i8), parameter :: SM_MUL1 = -4658895280553007687_i8
    integer(i8), parameter :: SM_MUL2 = -7723592293110705685_i8
    real(dp), parameter :: TWO_M53 = 2.0_dp**(-53)

    public :: kp_f_nbody_tuned, kp_f_spectralnorm_tuned, kp_f_mandelbrot_tuned, &
        kp_f_fannkuch_tuned, kp_f_pi_tuned

    ! ---- nbody: the plain kernel's constants ----
    integer, parameter :: NBODIES = 5
    real(dp), parameter :: PI = 3.141592653589793_dp
    real(dp), parameter :: SOLAR_MASS = (4.0_dp * PI) * PI
    real(dp), parameter :: DAYS_PER_YEAR = 365.24_dp
    ! columns: x, y, z, vx, vy, vz, mass of each body
    real(dp), parameter :: INITIAL_STATE(7, NBODIES) = reshape([ &
        0.0_dp, 0.0_dp, 0.0_dp, 0.0_dp, 0.0_dp, 0.0_dp, SOLAR_MASS, &
        4.84143144246472090e+00_dp, -1.16032004402742839e+00_dp, -1.03622044471123109e-01_dp, &
        1.66007664274403694e-03_dp * DAYS_PER_YEAR, 7.69901118419740425e-03_dp * DAYS_PER_YEAR, &
        -6.90460016972063023e-05_dp * DAYS_PER_YEAR, 9.54791938424326609e-04_dp * SOLAR_MASS, &
        8.34336671824457987e+00_dp, 4.12479856412430479e+00_dp, -4.03523417114321381e-01_dp, &
        -2.76742510726862411e-03_dp * DAYS_PER_YEAR, 4.99852801234917238e-03_dp * DAYS_PER_YEAR, &
        2.30417297573763929e-05_dp * DAYS_PER_YEAR, 2.85885980666130812e-04_dp * SOLAR_MASS, &
        1.28943695621391310e+01_dp, -1.51111514016986312e+01_dp, -2.23307578892655734e-01_dp, &
        2.96460137564761618e-03_dp * DAYS_PER_YEAR, 2.37847173959480950e-03_dp * DAYS_PER_YEAR, &
        -2.96589568540237556e-05_dp * DAYS_PER_YEAR, 4.36624404335156298e-05_dp * SOLAR_MASS, &
        1.53796971148509165e+01_dp, -2.59193146099879641e+01_dp, 1.79258772950371181e-01_dp, &
        2.68067772490389322e-03_dp * DAYS_PER_YEAR, 1.62824170038242295e-03_dp * DAYS_PER_YEAR, &
        -9.51592254519715870e-05_dp * DAYS_PER_YEAR, 5.15138902046400322e-05_dp * SOLAR_MASS], &
        [7, NBODIES])
    ! NB_SEL(b, q): all ones where body b's q-th partner is body q (q < b), zero where it is
    ! body q + 1 (bodies 1..4, partners q = 1..3; the fourth is body 5 for all)
    integer(i8), parameter :: NB_SEL(4, 3) = reshape([ &
        0_i8, -1_i8, -1_i8, -1_i8, &
        0_i8, 0_i8, -1_i8, -1_i8, &
        0_i8, 0_i8, 0_i8, -1_i8], [4, 3])

contains

    pure logical function range_ok(args, begin, end_)
        type(kp_kargs), intent(in), optional :: args
        integer(i8), intent(in) :: begin, end_
        range_ok = .false.
        if (.not. present(args)) return
        range_ok = ble(begin, end_) .and. ble(end_, args%items) .and. args%items >= 0
    end function range_ok

    pure elemental integer(i8) function sm_mix(z0) result(z)
        integer(i8), intent(in) :: z0
        z = ieor(z0, shiftr(z0, 30)) * SM_MUL1
        z = ieor(z, shiftr(z, 27)) * SM_MUL2
        z = ieor(z, shiftr(z, 31))
    end function sm_mix

    pure elemental real(dp) function unit(z)
        integer(i8), intent(in) :: z
        unit = real(shiftr(z, 11), dp) * TWO_M53
    end function unit

    ! ---- mandelbrot, tuned ----
    ! What makes it fast: one output byte (8 pixels) per step as 8-element arrays, so the
    ! latency chain of z = z^2 + c is shared by eight pixels. The loop over the eight lanes
    ! sits inside the loop over iterations and is kept a loop (!GCC$ unroll 1, else gfortran
    ! unrolls it into scalar code first and does not vectorise that back): gfortran
    ! vectorises it (two 4-double registers a quantity under AVX2, four 2-double ones under
    ! SSE2) and then unrolls the five iterations between exit checks into one straight run
    ! of vector code, both halves of the byte interleaved, with no branch (the -march=native
    ! assembly: vmulpd/vaddpd/vcmplepd/vandpd on ymm, the state in registers). The escape
    ! test is a 0/1 mask, ANDed every iteration (merge); the loop leaves early (checked
    ! every 5 iterations) when no pixel is left. Bit-identical: each element runs the plain
    ! iteration in the plain order (the parentheses), and its bit is "never above 4 in 50
    ! iterations", which the plain loop computes; pixels past N start escaped (the zero
    ! padding).
    integer(c_int32_t) function kp_f_mandelbrot_tuned(args, begin, end_) &
            bind(C, name="kp_f_mandelbrot_tuned")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        real(dp), parameter :: LIMIT = 2.0_dp
        integer(i8), parameter :: LANE(8) = [0_i8, 1_i8, 2_i8, 3_i8, 4_i8, 5_i8, 6_i8, 7_i8]
        integer, parameter :: BIT(8) = [128, 64, 32, 16, 8, 4, 2, 1]
        integer(c_int8_t), pointer :: out(:)
        real(dp) :: w, h, ci, cr(8), zr(8), zi(8), tr(8), ti(8)
        real(dp) :: alive(8) ! 1 while the pixel has not escaped, else 0
        integer(i8) :: n, bpr, y, xb, x(8)
        integer :: l, blk, k, byte

        kp_f_mandelbrot_tuned = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        if (bgt(args%n, KP_MANDELBROT_MAX_N)) return
        n = args%n
        bpr = (n + 7) / 8
        call c_f_pointer(args%buf(1), out, [end_ * bpr])
        w = real(n, dp)
        h = real(n, dp)
        do y = begin, end_ - 1
            ci = ((2.0_dp * real(y, dp)) / h) - 1.0_dp
            do xb = 0, bpr - 1
                x = 8 * xb + LANE
                cr = ((2.0_dp * real(x, dp)) / w) - 1.5_dp
                alive = merge(1.0_dp, 0.0_dp, x < n)
                zr = 0.0_dp
                zi = 0.0_dp
                tr = 0.0_dp
                ti = 0.0_dp
                do blk = 1, 10
                    do k = 1, 5
                        !GCC$ unroll 1
                        do l = 1, 8
                            zi(l) = ((2.0_dp * zr(l)) * zi(l)) + ci
                            zr(l) = (tr(l) - ti(l)) + cr(l)
                            tr(l) = zr(l) * zr(l)
                            ti(l) = zi(l) * zi(l)
                            alive(l) = merge(alive(l), 0.0_dp, tr(l) + ti(l) <= LIMIT * LIMIT)
                        end do
                    end do
                    if (maxval(alive) < 0.5_dp) exit
                end do
                byte = sum(merge(BIT, 0, alive > 0.5_dp))
                if (byte > 127) byte = byte - 256
                out(y * bpr + xb + 1) = int(byte, c_int8_t)
            end do
        end do
        kp_f_mandelbrot_tuned = KP_KERNEL_OK
    end function kp_f_mandelbrot_tuned

    ! ---- spectralnorm, tuned ----
    ! What makes it fast: eight rows at once as 8-element arrays, so the divisions 1/A(i,j)
    ! are vectorised and eight add chains hide the add latency; A's denominators are doubles
    ! stepped by additions (d(i,j+1) = d(i,j) + i+j+1, one more for A^T), exact below 2^53,
    ! so N above 2^25 takes the plain loop. Bit-identical: each row adds (1/d)*u(j) in the
    ! plain order with the same d.
    integer(c_int32_t) function kp_f_spectralnorm_tuned(args, begin, end_) &
            bind(C, name="kp_f_spectralnorm_tuned")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        integer(i8), parameter :: EXACT_MAX_N = 2_i8**25
        real(dp), pointer :: u(:), au(:)
        real(dp) :: d(8), inc(8), s(8), row_sum
        integer(i8) :: i, j, n, r, t
        integer :: l

        kp_f_spectralnorm_tuned = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        if (bgt(args%n, KP_SPECTRALNORM_MAX_N)) return
        n = args%n
        call c_f_pointer(args%buf(1), u, [max(n, 0_i8)])
        call c_f_pointer(args%buf(2), au, [end_])
        t = 0
        if (args%iparam(1) /= 0) t = 1
        i = begin
        if (n <= EXACT_MAX_N) then
            do while (i + 8 <= end_)
                do l = 1, 8
                    r = i + (l - 1)
                    d(l) = real((r * (r + 1) / 2 + (1 - t) * r) + 1, dp)
                    inc(l) = real(r + 1 + t, dp)
                end do
                s = 0.0_dp
                do j = 1, n
                    ! a loop over the rows kept a loop, so gfortran vectorises it
                    !GCC$ unroll 1
                    do l = 1, 8
                        s(l) = s(l) + (1.0_dp / d(l)) * u(j)
                        d(l) = d(l) + inc(l)
                        inc(l) = inc(l) + 1.0_dp
                    end do
                end do
                au(i + 1:i + 8) = s
                i = i + 8
            end do
        end if
        do while (i < end_)
            row_sum = 0.0_dp
            if (t /= 0) then
                do j = 0, n - 1
                    row_sum = row_sum + eval_a(j, i) * u(j + 1)
                end do
            else
                do j = 0, n - 1
                    row_sum = row_sum + eval_a(i, j) * u(j + 1)
                end do
            end if
            au(i + 1) = row_sum
            i = i + 1
        end do
        kp_f_spectralnorm_tuned = KP_KERNEL_OK
    end function kp_f_spectralnorm_tuned

    pure elemental real(dp) function eval_a(i, j)
        integer(i8), intent(in) :: i, j
        eval_a = 1.0_dp / real(((i + j) * (i + j + 1) / 2 + i) + 1, dp)
    end function eval_a

    ! ---- nbody, tuned ----
    ! What makes it fast: the velocity update is vectorised across bodies. In the plain loop
    ! every body receives exactly four velocity updates, one from each other body, in the
    ! order of its partners: body b's q-th partner is q for q < b, else q + 1. The loop over
    ! bodies 1..4 (kept a loop, so gfortran's loop vectoriser makes it one 4-lane pass: one
    ! ymm per coordinate, two xmm under SSE) does the four updates of its lane b in that
    ! order, each pair from scratch (d = x(p) - x(b), d^2, sqrt, dt/d^3, v(b) += d*m(p)*mag):
    ! four vsqrtpd and four vdivpd a step, each pair's root and division done twice (once per
    ! body), no pair arrays and no permutes back to the bodies. The partner positions of the
    ! first three updates are a branch-free bit select of the broadcasts of bodies q and
    ! q + 1 (nb_pick, with the constant lane masks NB_SEL; a merge() becomes branches that
    ! gfortran does not if-convert, and 4-lane array statements are scalarised); the fourth
    ! partner is body 5 in every lane, a plain broadcast. Body 5's four updates, from bodies
    ! 1..4 in order, use the last update's lanes (the same pairs): stored per lane and added
    ! in lane order. Positions and velocities stay in local arrays across the steps; the
    ! position update of bodies 1..4 is a loop too (one 4-lane pass), body 5's scalar.
    ! Bit-identical: with d = x(p) - x(b) the j-side update of the plain kernel,
    ! v(j) += (dx*m(i))*mag with dx = x(i) - x(j), is the same expression; its i-side update
    ! v(i) -= (dx*m(j))*mag is v(b) += ((-dx)*m(p))*mag, and negation is exact (rounding to
    ! nearest is symmetric, and a - y == a + (-y)). d^2 is the same for both signs, so is
    ! mag; the bit select is exact; each velocity gets its four updates in the plain order.

    ! a where the mask s is all ones, b where it is zero, bit for bit
    pure elemental real(dp) function nb_pick(a, b, s)
        real(dp), intent(in) :: a, b
        integer(i8), intent(in) :: s
        nb_pick = transfer(ior(iand(transfer(a, 0_i8), s), iand(transfer(b, 0_i8), not(s))), 0.0_dp)
    end function nb_pick

    pure subroutine nb_init(s, system)
        real(dp), intent(out) :: s(NBODIES, 7)
        integer(i8), intent(in) :: system
        real(dp) :: px, py, pz
        integer :: b
        integer(i8) :: k

        s = transpose(INITIAL_STATE)
        if (system /= 0) then
            do b = 2, NBODIES
                k = 3_i8 * int(b - 1, i8)
                s(b, 1) = s(b, 1) + 1.0e-3_dp * (unit(sm_mix(system + (k + 1_i8) * SM_GAMMA)) - 0.5_dp)
                s(b, 2) = s(b, 2) + 1.0e-3_dp * (unit(sm_mix(system + (k + 2_i8) * SM_GAMMA)) - 0.5_dp)
                s(b, 3) = s(b, 3) + 1.0e-3_dp * (unit(sm_mix(system + (k + 3_i8) * SM_GAMMA)) - 0.5_dp)
            end do
        end if
        px = 0.0_dp
        py = 0.0_dp
        pz = 0.0_dp
        do b = 1, NBODIES
            px = px + s(b, 4) * s(b, 7)
            py = py + s(b, 5) * s(b, 7)
            pz = pz + s(b, 6) * s(b, 7)
        end do
        s(1, 4) = (-px) / SOLAR_MASS
        s(1, 5) = (-py) / SOLAR_MASS
        s(1, 6) = (-pz) / SOLAR_MASS
    end subroutine nb_init

    pure real(dp) function nb_energy(x, y, z, vx, vy, vz, m) result(e)
        real(dp), intent(in) :: x(NBODIES), y(NBODIES), z(NBODIES), vx(NBODIES), vy(NBODIES), &
            vz(NBODIES), m(NBODIES)
        real(dp) :: dx, dy, dz
        integer :: i, j

        e = 0.0_dp
        do i = 1, NBODIES
            e = e + (0.5_dp * m(i)) * (((vx(i) * vx(i)) + (vy(i) * vy(i))) + (vz(i) * vz(i)))
            do j = i + 1, NBODIES
                dx = x(i) - x(j)
                dy = y(i) - y(j)
                dz = z(i) - z(j)
                e = e - (m(i) * m(j)) / sqrt(((dx * dx) + (dy * dy)) + (dz * dz))
            end do
        end do
    end function nb_energy

    integer(c_int32_t) function kp_f_nbody_tuned(args, begin, end_) bind(C, name="kp_f_nbody_tuned")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        real(dp), parameter :: DT = 0.01_dp
        real(dp), pointer :: out(:)
        real(dp) :: s(NBODIES, 7), x(NBODIES), y(NBODIES), z(NBODIES), vx(NBODIES), vy(NBODIES), &
            vz(NBODIES), m(NBODIES)
        ! mp(b, q): mass of body b's q-th partner; ux, uy, uz: body 5's updates from bodies 1..4
        real(dp) :: mp(4, 3), ux(4), uy(4), uz(4), dx, dy, dz, dist, mag
        integer(i8) :: sys, k
        integer :: b, q

        kp_f_nbody_tuned = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        if (args%iparam(1) < 0) return
        call c_f_pointer(args%buf(1), out, [2_i8 * end_])
        do sys = begin, end_ - 1
            call nb_init(s, sys)
            x = s(:, 1)
            y = s(:, 2)
            z = s(:, 3)
            vx = s(:, 4)
            vy = s(:, 5)
            vz = s(:, 6)
            m = s(:, 7)
            do q = 1, 3
                mp(:, q) = nb_pick(m(q), m(q + 1), NB_SEL(:, q))
            end do
            out(2 * sys + 1) = nb_energy(x, y, z, vx, vy, vz, m)
            do k = 1, args%iparam(1)
                ! one 4-lane pass over bodies 1..4 (a loop, so that it is vectorised)
                !GCC$ unroll 1
                do b = 1, 4
                    !GCC$ unroll 3
                    do q = 1, 3
                        dx = nb_pick(x(q), x(q + 1), NB_SEL(b, q)) - x(b)
                        dy = nb_pick(y(q), y(q + 1), NB_SEL(b, q)) - y(b)
                        dz = nb_pick(z(q), z(q + 1), NB_SEL(b, q)) - z(b)
                        dist = sqrt(((dx * dx) + (dy * dy)) + (dz * dz))
                        mag = DT / ((dist * dist) * dist)
                        vx(b) = vx(b) + (dx * mp(b, q)) * mag
                        vy(b) = vy(b) + (dy * mp(b, q)) * mag
                        vz(b) = vz(b) + (dz * mp(b, q)) * mag
                    end do
                    ! the fourth partner is body 5 in every lane
                    dx = x(5) - x(b)
                    dy = y(5) - y(b)
                    dz = z(5) - z(b)
                    dist = sqrt(((dx * dx) + (dy * dy)) + (dz * dz))
                    mag = DT / ((dist * dist) * dist)
                    vx(b) = vx(b) + (dx * m(5)) * mag
                    vy(b) = vy(b) + (dy * m(5)) * mag
                    vz(b) = vz(b) + (dz * m(5)) * mag
                    ! body 5's update from body b (the same pair, the same mag)
                    ux(b) = ((x(b) - x(5)) * m(b)) * mag
                    uy(b) = ((y(b) - y(5)) * m(b)) * mag
                    uz(b) = ((z(b) - z(5)) * m(b)) * mag
                end do
                vx(5) = (((vx(5) + ux(1)) + ux(2)) + ux(3)) + ux(4)
                vy(5) = (((vy(5) + uy(1)) + uy(2)) + uy(3)) + uy(4)
                vz(5) = (((vz(5) + uz(1)) + uz(2)) + uz(3)) + uz(4)
                !GCC$ unroll 1
                do b = 1, 4
                    x(b) = x(b) + DT * vx(b)
                    y(b) = y(b) + DT * vy(b)
                    z(b) = z(b) + DT * vz(b)
                end do
                x(5) = x(5) + DT * vx(5)
                y(5) = y(5) + DT * vy(5)
                z(5) = z(5) + DT * vz(5)
            end do
            out(2 * sys + 2) = nb_energy(x, y, z, vx, vy, vz, m)
        end do
        kp_f_nbody_tuned = KP_KERNEL_OK
    end function kp_f_nbody_tuned

    ! ---- fannkuch-redux, tuned ----
    ! What makes it fast: the permutation (n <= 12) is packed 4 bits an element into one
    ! 64-bit integer q, and its nibble reversal r (element l in nibble 15-l) is kept beside
    ! it, so a flip (reverse the first f+1 elements) is two shifts and a mask on each word,
    ! with no element loop and no reversal to compute:
    !     q' = (r >> 4(15-f)) | (q & nibbles f+1..15),  r' = (q << 4(15-f)) | (r & nibbles 0..14-f)
    ! Elements are stored as 15 - value, so the shift count is four times q's first nibble:
    ! and, shift, shift, or on the critical path, one cycle each, as many as C's pshufb flip.
    ! The next-permutation rotations update both words with shifts and masks; their loop
    ! runs to n-1, a bound gfortran sees, so it unrolls it with constant masks and plain
    ! shifts (no test for counts of 64 and more). Fortran has no byte shuffle; this is the
    ! register-only way to the same effect. Bit-identical by construction: integers only,
    ! the same permutations in the same order.
    pure integer(i8) function nibble_reverse(w0) result(w)
        integer(i8), intent(in) :: w0
        integer(i8), parameter :: M4 = int(z'0F0F0F0F0F0F0F0F', i8)
        integer(i8), parameter :: M8 = int(z'00FF00FF00FF00FF', i8)
        integer(i8), parameter :: M16 = int(z'0000FFFF0000FFFF', i8)
        w = ior(shiftl(iand(w0, M4), 4), iand(shiftr(w0, 4), M4))
        w = ior(shiftl(iand(w, M8), 8), iand(shiftr(w, 8), M8))
        w = ior(shiftl(iand(w, M16), 16), iand(shiftr(w, 16), M16))
        w = ior(shiftl(w, 32), shiftr(w, 32))
    end function nibble_reverse

    integer(c_int32_t) function kp_f_fannkuch_tuned(args, begin, end_) &
            bind(C, name="kp_f_fannkuch_tuned")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        integer, parameter :: MAX_N = KP_FANNKUCH_MAX_N
        integer(i8), pointer :: partial(:)
        integer(i8) :: fact(0:MAX_N), idx, k, flips, checksum, max_flips, perm, rev, q, r, qn, low, high
        integer :: p(0:MAX_N - 1), pp(0:MAX_N - 1), cnt(0:MAX_N - 1)
        integer :: n, i, j, d, c, s

        kp_f_fannkuch_tuned = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        if (args%n < 1 .or. args%n > MAX_N .or. .not. c_associated(args%partial)) return
        n = int(args%n)
        kp_f_fannkuch_tuned = KP_KERNEL_OK
        if (begin == end_) return
        fact(0) = 1
        do i = 1, n
            fact(i) = fact(i - 1) * i
        end do
        kp_f_fannkuch_tuned = KP_KERNEL_BAD_ARGS
        if (bgt(end_, fact(n))) return

        cnt = 0
        do i = 0, n - 1
            p(i) = i
        end do
        idx = begin
        do i = n - 1, 1, -1
            d = int(idx / fact(i))
            cnt(i) = d
            idx = mod(idx, fact(i))
            pp(0:i) = p(0:i)
            do j = 0, i
                if (j + d <= i) then
                    p(j) = pp(j + d)
                else
                    p(j) = pp(j + d - i - 1)
                end if
            end do
        end do
        ! element l, stored as 15 - p(l), in bits 4l..4l+3; the nibbles past n stay 0 (no
        ! flip or rotation reaches them)
        perm = 0
        do i = n - 1, 0, -1
            perm = ior(shiftl(perm, 4), int(15 - p(i), i8))
        end do
        rev = nibble_reverse(perm)

        checksum = 0
        max_flips = 0
        do k = begin, end_ - 1
            flips = 0
            c = int(iand(perm, 15_i8)) ! 15 - the first element
            if (c /= 15) then
                q = perm
                r = rev
                do while (c /= 15)
                    s = 4 * c
                    qn = ior(shiftr(r, s), iand(q, not(shiftr(-1_i8, s))))
                    r = ior(shiftl(q, s), iand(r, not(shiftl(-1_i8, s))))
                    q = qn
                    flips = flips + 1
                    c = int(iand(q, 15_i8))
                end do
            end if
            if (flips > max_flips) max_flips = flips
            if (mod(k, 2_i8) == 0) then
                checksum = checksum + flips
            else
                checksum = checksum - flips
            end if
            if (k + 1 < end_) then
                ! rotate the first i+1 elements left by one (in rev: the top i+1 nibbles
                ! up by one), for i = 1, 2, ... as the plain kernel's counters say; below
                ! n! the counters never carry past i = n-1
                do i = 1, n - 1
                    low = not(shiftl(-1_i8, 4 * (i + 1))) ! nibbles 0..i
                    q = iand(perm, low)
                    perm = ior(iand(perm, not(low)), ior(shiftr(q, 4), shiftl(iand(q, 15_i8), 4 * i)))
                    high = shiftl(-1_i8, 4 * (15 - i)) ! nibbles 15-i..15
                    r = iand(rev, high)
                    rev = ior(iand(rev, not(high)), ior(shiftl(r, 4), shiftl(shiftr(r, 60), 4 * (15 - i))))
                    cnt(i) = cnt(i) + 1
                    if (cnt(i) <= i) exit
                    cnt(i) = 0
                end do
            end if
        end do

        call c_f_pointer(args%partial, partial, [KP_PARTIAL_LEN])
        partial(1) = partial(1) + checksum
        if (max_flips > partial(2)) partial(2) = max_flips
        kp_f_fannkuch_tuned = KP_KERNEL_OK
    end function kp_f_fannkuch_tuned

    ! ---- Monte Carlo pi, tuned ----
    ! What makes it fast: splitmix64's counter term seed + (k+1)*gamma advances by one
    ! addition per output instead of a multiplication, and eight samples are drawn per step
    ! as 8-element arrays (vectorised), so the remaining multiplies overlap. Bit-identical:
    ! the same integers (-fwrapv), doubles and comparison; an exact count.
    integer(c_int32_t) function kp_f_pi_tuned(args, begin, end_) bind(C, name="kp_f_pi_tuned")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        integer(i8), parameter :: LANE_STEP(8) = [0_i8, 2_i8, 4_i8, 6_i8, 8_i8, 10_i8, 12_i8, 14_i8]
        integer(i8), pointer :: partial(:)
        integer(i8) :: i, hits, z, zx(8), lane_offset(8), gamma, step
        real(dp) :: x(8), y(8), xs, ys

        kp_f_pi_tuned = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        if (.not. c_associated(args%partial) .or. bgt(args%items, KP_PI_MAX_SAMPLES)) return
        ! products of gamma wrap (-fwrapv): formed at run time, as constant expressions
        ! they would be refused as overflowing
        gamma = SM_GAMMA
        lane_offset = LANE_STEP * gamma
        step = 16_i8 * gamma
        hits = 0
        i = begin
        z = args%iparam(1) + (2_i8 * i + 1_i8) * gamma
        do while (end_ - i >= 8)
            zx = z + lane_offset
            x = unit(sm_mix(zx))
            y = unit(sm_mix(zx + gamma))
            hits = hits + count((x * x) + (y * y) < 1.0_dp)
            z = z + step
            i = i + 8
        end do
        do while (i < end_)
            xs = unit(sm_mix(z))
            ys = unit(sm_mix(z + gamma))
            if ((xs * xs) + (ys * ys) < 1.0_dp) hits = hits + 1
            z = z + 2_i8 * gamma
            i = i + 1
        end do
        call c_f_pointer(args%partial, partial, [KP_PARTIAL_LEN])
        partial(1) = partial(1) + hits
        kp_f_pi_tuned = KP_KERNEL_OK
    end function kp_f_pi_tuned

end module kp_tuned
