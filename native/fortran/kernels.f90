! The eight kernels in Fortran 2008. Contract and per-kernel buffers: native/include/kernels.h.
! Built with -O3 -ffp-contract=off -fwrapv so that every floating-point operation is the one
! written here, in this order, as in the C reference (native/c/kernels.c) and the C++ and
! Rust versions: results must agree bit for bit. Hence:
!   - every real constant carries the _dp (double) kind: a default-real literal would be
!     rounded to single precision first;
!   - expressions carry the parentheses of the C evaluation order (gfortran honours them
!     and does not reassociate without -ffast-math);
!   - C's uint64_t is integer(int64) here: -fwrapv makes + and * wrap modulo 2**64 like
!     unsigned arithmetic, shiftr is a logical shift, and bge/bgt compare as unsigned.
! Indices begin/end_ are the C (0-based) item indices; Fortran arrays mapped onto the C
! buffers are 1-based, so element i of a C buffer is element i + 1 here.
module kp_kernels
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
    ! Bounds of kernels.h (KP_MAX_ITEMS is huge(0_i8): items are non-negative as int64)
    integer(c_int64_t), parameter :: KP_SPECTRALNORM_MAX_N = 2_c_int64_t**30
    integer(c_int64_t), parameter :: KP_MANDELBROT_MAX_N = 2_c_int64_t**32
    integer, parameter :: KP_FANNKUCH_MAX_N = 12
    integer(c_int64_t), parameter :: KP_PI_MAX_SAMPLES = 2_c_int64_t**62
    integer(c_int64_t), parameter :: KP_LAPLACE_MAX_N = 2_c_int64_t**24

    ! Mirror of struct kp_kargs (uint64_t fields are stored as int64 with the same bits).
    type, bind(C), public :: kp_kargs
        integer(c_int64_t) :: n
        integer(c_int64_t) :: items
        integer(c_int64_t) :: iparam(4)
        real(c_double) :: fparam(4)
        type(c_ptr) :: buf(KP_MAX_BUFS)
        integer(c_int64_t) :: len(KP_MAX_BUFS)
        type(c_ptr) :: partial
    end type kp_kargs

    ! splitmix64 constants 0x9e3779b97f4a7c15, 0xbf58476d1ce4e5b9, 0x94d049bb133111eb
    integer(i8), parameter :: SM_GAMMA = -7046029254386353131_i8
    integer(i8), parameter :: SM_MUL1 = -4658895280553007687_i8
    integer(i8), parameter :: SM_MUL2 = -7723592293110705685_i8
    ! 2**-53, exact
    real(dp), parameter :: TWO_M53 = 2.0_dp**(-53)

    public :: kp_f_seed, kp_f_nbody, kp_f_spectralnorm, kp_f_mandelbrot, kp_f_fannkuch, &
        kp_f_triad, kp_f_pi, kp_f_laplace, kp_f_splitmix64_at

    ! ---- nbody ----
    integer, parameter :: NBODIES = 5
    real(dp), parameter :: PI = 3.141592653589793_dp
    real(dp), parameter :: SOLAR_MASS = (4.0_dp * PI) * PI
    real(dp), parameter :: DAYS_PER_YEAR = 365.24_dp

    type :: body
        real(dp) :: x, y, z, vx, vy, vz, mass
    end type body

    ! Products are folded at compile time, one rounding each, as in the C initialiser.
    type(body), parameter :: INITIAL_STATE(NBODIES) = [ &
        body(0.0_dp, 0.0_dp, 0.0_dp, 0.0_dp, 0.0_dp, 0.0_dp, SOLAR_MASS), &
        body(4.84143144246472090e+00_dp, -1.16032004402742839e+00_dp, -1.03622044471123109e-01_dp, &
             1.66007664274403694e-03_dp * DAYS_PER_YEAR, 7.69901118419740425e-03_dp * DAYS_PER_YEAR, &
             -6.90460016972063023e-05_dp * DAYS_PER_YEAR, 9.54791938424326609e-04_dp * SOLAR_MASS), &
        body(8.34336671824457987e+00_dp, 4.12479856412430479e+00_dp, -4.03523417114321381e-01_dp, &
             -2.76742510726862411e-03_dp * DAYS_PER_YEAR, 4.99852801234917238e-03_dp * DAYS_PER_YEAR, &
             2.30417297573763929e-05_dp * DAYS_PER_YEAR, 2.85885980666130812e-04_dp * SOLAR_MASS), &
        body(1.28943695621391310e+01_dp, -1.51111514016986312e+01_dp, -2.23307578892655734e-01_dp, &
             2.96460137564761618e-03_dp * DAYS_PER_YEAR, 2.37847173959480950e-03_dp * DAYS_PER_YEAR, &
             -2.96589568540237556e-05_dp * DAYS_PER_YEAR, 4.36624404335156298e-05_dp * SOLAR_MASS), &
        body(1.53796971148509165e+01_dp, -2.59193146099879641e+01_dp, 1.79258772950371181e-01_dp, &
             2.68067772490389322e-03_dp * DAYS_PER_YEAR, 1.62824170038242295e-03_dp * DAYS_PER_YEAR, &
             -9.51592254519715870e-05_dp * DAYS_PER_YEAR, 5.15138902046400322e-05_dp * SOLAR_MASS) ]

contains

    ! Same test as the C CHECK_RANGE, with unsigned comparisons. `args` is OPTIONAL so that
    ! a NULL kp_kargs pointer arrives as "not present" instead of being dereferenced.
    pure logical function range_ok(args, begin, end_)
        type(kp_kargs), intent(in), optional :: args
        integer(i8), intent(in) :: begin, end_
        range_ok = .false.
        if (.not. present(args)) return
        range_ok = ble(begin, end_) .and. ble(end_, args%items) .and. args%items >= 0
    end function range_ok

    ! ---- splitmix64, counter based: output k of the stream seeded with `seed` ----
    pure elemental integer(i8) function splitmix64_at(seed, k) result(z)
        integer(i8), intent(in) :: seed, k
        z = seed + (k + 1_i8) * SM_GAMMA
        z = ieor(z, shiftr(z, 30)) * SM_MUL1
        z = ieor(z, shiftr(z, 27)) * SM_MUL2
        z = ieor(z, shiftr(z, 31))
    end function splitmix64_at

    integer(c_int64_t) function kp_f_splitmix64_at(seed, k) bind(C, name="kp_f_splitmix64_at")
        integer(c_int64_t), value :: seed, k
        kp_f_splitmix64_at = splitmix64_at(seed, k)
    end function kp_f_splitmix64_at

    ! uniform double in [0, 1) from the top 53 bits (the conversion is exact)
    pure elemental real(dp) function unit(z)
        integer(i8), intent(in) :: z
        unit = real(shiftr(z, 11), dp) * TWO_M53
    end function unit

    ! ---- seed ----
    integer(c_int32_t) function kp_f_seed(args, begin, end_) bind(C, name="kp_f_seed")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        integer(i8), pointer :: out(:)
        integer(i8) :: i, k, x, j, iters

        kp_f_seed = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        ! a negative count would be 2**64 - |c| iterations in C: refused everywhere
        if (args%iparam(1) < 0) return
        call c_f_pointer(args%buf(1), out, [end_])
        iters = args%iparam(1)
        do i = begin, end_ - 1
            x = i + 1_i8
            j = 0
            do k = 1, iters
                j = j + x * x  ! wraps (-fwrapv), as the unsigned C sum
            end do
            out(i + 1) = j
        end do
        kp_f_seed = KP_KERNEL_OK
    end function kp_f_seed

    ! ---- nbody ----
    pure subroutine nbody_init(b, system)
        type(body), intent(out) :: b(NBODIES)
        integer(i8), intent(in) :: system
        real(dp) :: px, py, pz
        integer :: i
        integer(i8) :: k

        b = INITIAL_STATE
        if (system /= 0) then
            ! planets' positions moved by up to +-0.0005 AU, keyed by (system, 3*body+axis);
            ! C's body index i is i - 1 here
            do i = 2, NBODIES
                k = 3_i8 * int(i - 1, i8)
                b(i)%x = b(i)%x + 1.0e-3_dp * (unit(splitmix64_at(system, k + 0_i8)) - 0.5_dp)
                b(i)%y = b(i)%y + 1.0e-3_dp * (unit(splitmix64_at(system, k + 1_i8)) - 0.5_dp)
                b(i)%z = b(i)%z + 1.0e-3_dp * (unit(splitmix64_at(system, k + 2_i8)) - 0.5_dp)
            end do
        end if
        px = 0.0_dp
        py = 0.0_dp
        pz = 0.0_dp
        do i = 1, NBODIES
            px = px + b(i)%vx * b(i)%mass
            py = py + b(i)%vy * b(i)%mass
            pz = pz + b(i)%vz * b(i)%mass
        end do
        b(1)%vx = (-px) / SOLAR_MASS
        b(1)%vy = (-py) / SOLAR_MASS
        b(1)%vz = (-pz) / SOLAR_MASS
    end subroutine nbody_init

    pure real(dp) function nbody_energy(b) result(e)
        type(body), intent(in) :: b(NBODIES)
        real(dp) :: dx, dy, dz, distance
        integer :: i, j

        e = 0.0_dp
        do i = 1, NBODIES
            e = e + (0.5_dp * b(i)%mass) &
                * (((b(i)%vx * b(i)%vx) + (b(i)%vy * b(i)%vy)) + (b(i)%vz * b(i)%vz))
            do j = i + 1, NBODIES
                dx = b(i)%x - b(j)%x
                dy = b(i)%y - b(j)%y
                dz = b(i)%z - b(j)%z
                distance = sqrt(((dx * dx) + (dy * dy)) + (dz * dz))
                e = e - (b(i)%mass * b(j)%mass) / distance
            end do
        end do
    end function nbody_energy

    pure subroutine nbody_advance(b, dt)
        type(body), intent(inout) :: b(NBODIES)
        real(dp), intent(in) :: dt
        real(dp) :: dx, dy, dz, distance, mag
        integer :: i, j

        do i = 1, NBODIES
            do j = i + 1, NBODIES
                dx = b(i)%x - b(j)%x
                dy = b(i)%y - b(j)%y
                dz = b(i)%z - b(j)%z
                distance = sqrt(((dx * dx) + (dy * dy)) + (dz * dz))
                mag = dt / ((distance * distance) * distance)
                b(i)%vx = b(i)%vx - (dx * b(j)%mass) * mag
                b(i)%vy = b(i)%vy - (dy * b(j)%mass) * mag
                b(i)%vz = b(i)%vz - (dz * b(j)%mass) * mag
                b(j)%vx = b(j)%vx + (dx * b(i)%mass) * mag
                b(j)%vy = b(j)%vy + (dy * b(i)%mass) * mag
                b(j)%vz = b(j)%vz + (dz * b(i)%mass) * mag
            end do
        end do
        do i = 1, NBODIES
            b(i)%x = b(i)%x + dt * b(i)%vx
            b(i)%y = b(i)%y + dt * b(i)%vy
            b(i)%z = b(i)%z + dt * b(i)%vz
        end do
    end subroutine nbody_advance

    integer(c_int32_t) function kp_f_nbody(args, begin, end_) bind(C, name="kp_f_nbody")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        real(dp), pointer :: out(:)
        type(body) :: b(NBODIES)
        integer(i8) :: s, k

        kp_f_nbody = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        if (args%iparam(1) < 0) return
        call c_f_pointer(args%buf(1), out, [2_i8 * end_])
        do s = begin, end_ - 1
            call nbody_init(b, s)
            out(2 * s + 1) = nbody_energy(b)
            do k = 1, args%iparam(1)
                call nbody_advance(b, 0.01_dp)
            end do
            out(2 * s + 2) = nbody_energy(b)
        end do
        kp_f_nbody = KP_KERNEL_OK
    end function kp_f_nbody

    ! ---- spectralnorm ----
    ! A(i, j) with C's 0-based i, j; integer division truncates as in C
    pure elemental real(dp) function eval_a(i, j)
        integer(i8), intent(in) :: i, j
        eval_a = 1.0_dp / real(((i + j) * (i + j + 1) / 2 + i) + 1, dp)
    end function eval_a

    integer(c_int32_t) function kp_f_spectralnorm(args, begin, end_) &
            bind(C, name="kp_f_spectralnorm")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        real(dp), pointer :: u(:), au(:)
        real(dp) :: row_sum
        integer(i8) :: i, j, n

        kp_f_spectralnorm = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        if (bgt(args%n, KP_SPECTRALNORM_MAX_N)) return
        n = args%n
        call c_f_pointer(args%buf(1), u, [max(n, 0_i8)])
        call c_f_pointer(args%buf(2), au, [end_])
        ! the sums stay strictly sequential: no reassociation, same order in every language
        do i = begin, end_ - 1
            row_sum = 0.0_dp
            if (args%iparam(1) /= 0) then
                do j = 0, n - 1
                    row_sum = row_sum + eval_a(j, i) * u(j + 1)
                end do
            else
                do j = 0, n - 1
                    row_sum = row_sum + eval_a(i, j) * u(j + 1)
                end do
            end if
            au(i + 1) = row_sum
        end do
        kp_f_spectralnorm = KP_KERNEL_OK
    end function kp_f_spectralnorm

    ! ---- mandelbrot ----
    integer(c_int32_t) function kp_f_mandelbrot(args, begin, end_) bind(C, name="kp_f_mandelbrot")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        integer(c_int8_t), pointer :: out(:)
        real(dp), parameter :: LIMIT = 2.0_dp
        real(dp) :: w, h, ci, cr, zr, zi, tr, ti
        integer(i8) :: n, bpr, y, x, pos
        integer :: byte_acc, bit_num, i

        kp_f_mandelbrot = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        if (bgt(args%n, KP_MANDELBROT_MAX_N)) return
        n = args%n
        bpr = (n + 7) / 8
        call c_f_pointer(args%buf(1), out, [end_ * bpr])
        w = real(n, dp)
        h = real(n, dp)
        do y = begin, end_ - 1
            ! pos is the 0-based byte offset of the next output byte in the buffer
            pos = y * bpr
            byte_acc = 0
            bit_num = 0
            ci = ((2.0_dp * real(y, dp)) / h) - 1.0_dp
            do x = 0, n - 1
                cr = ((2.0_dp * real(x, dp)) / w) - 1.5_dp
                zr = 0.0_dp
                zi = 0.0_dp
                tr = 0.0_dp
                ti = 0.0_dp
                do i = 1, 50
                    if (.not. (tr + ti <= LIMIT * LIMIT)) exit
                    zi = ((2.0_dp * zr) * zi) + ci
                    zr = (tr - ti) + cr
                    tr = zr * zr
                    ti = zi * zi
                end do
                byte_acc = shiftl(byte_acc, 1)
                if (tr + ti <= LIMIT * LIMIT) byte_acc = ior(byte_acc, 1)
                bit_num = bit_num + 1
                if (bit_num == 8) then
                    out(pos + 1) = to_byte(byte_acc)
                    pos = pos + 1
                    byte_acc = 0
                    bit_num = 0
                else if (x == n - 1) then
                    ! last, partial byte of an odd-width row: pad with zero bits on the right
                    byte_acc = shiftl(byte_acc, int(8 - mod(n, 8_i8)))
                    out(pos + 1) = to_byte(byte_acc)
                    pos = pos + 1
                    byte_acc = 0
                    bit_num = 0
                end if
            end do
        end do
        kp_f_mandelbrot = KP_KERNEL_OK

    contains

        ! the low 8 bits of `acc` as the (signed) int8 holding the same bits as C's uint8_t
        pure integer(c_int8_t) function to_byte(acc)
            integer, intent(in) :: acc
            integer :: v
            v = iand(acc, 255)
            if (v > 127) v = v - 256
            to_byte = int(v, c_int8_t)
        end function to_byte
    end function kp_f_mandelbrot

    ! ---- fannkuch-redux, over blocks of permutation indices ----
    ! Permutation arrays are declared 0-based so that the index arithmetic is C's.
    integer(c_int32_t) function kp_f_fannkuch(args, begin, end_) bind(C, name="kp_f_fannkuch")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        integer, parameter :: MAX_N = KP_FANNKUCH_MAX_N
        integer(i8), pointer :: partial(:)
        integer(i8) :: fact(0:MAX_N), idx, k, flips, checksum, max_flips
        integer :: p(0:MAX_N - 1), pp(0:MAX_N - 1), cnt(0:MAX_N - 1)
        integer :: n, i, j, d, first, next, lo, hi, t

        kp_f_fannkuch = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        if (args%n < 1 .or. args%n > MAX_N .or. .not. c_associated(args%partial)) return
        n = int(args%n)
        kp_f_fannkuch = KP_KERNEL_OK
        if (begin == end_) return
        fact(0) = 1
        do i = 1, n
            fact(i) = fact(i - 1) * i
        end do
        ! indices past n! have no permutation (the C version does not check this)
        kp_f_fannkuch = KP_KERNEL_BAD_ARGS
        if (bgt(end_, fact(n))) return

        p = 0
        pp = 0
        cnt = 0
        ! first permutation of the block: decode `begin` in the factorial number system
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

        checksum = 0
        max_flips = 0
        do k = begin, end_ - 1
            ! count the flips of this permutation
            flips = 0
            if (p(0) /= 0) then
                pp(0:n - 1) = p(0:n - 1)
                do
                    first = pp(0)
                    if (first == 0) exit
                    lo = 0
                    hi = first
                    do while (lo < hi)
                        t = pp(lo)
                        pp(lo) = pp(hi)
                        pp(hi) = t
                        lo = lo + 1
                        hi = hi - 1
                    end do
                    flips = flips + 1
                end do
            end if
            if (flips > max_flips) max_flips = flips
            ! the sign alternates with the (0-based) permutation index k
            if (mod(k, 2_i8) == 0) then
                checksum = checksum + flips
            else
                checksum = checksum - flips
            end if
            if (k + 1 < end_) then
                ! next permutation in the same order as the sequential algorithm
                first = p(1)
                p(1) = p(0)
                p(0) = first
                i = 1
                do
                    cnt(i) = cnt(i) + 1
                    if (cnt(i) <= i) exit
                    cnt(i) = 0
                    i = i + 1
                    next = p(1)
                    p(0) = next
                    do j = 1, i - 1
                        p(j) = p(j + 1)
                    end do
                    p(i) = first
                    first = next
                end do
            end if
        end do

        call c_f_pointer(args%partial, partial, [KP_PARTIAL_LEN])
        partial(1) = partial(1) + checksum
        if (max_flips > partial(2)) partial(2) = max_flips
        kp_f_fannkuch = KP_KERNEL_OK
    end function kp_f_fannkuch

    ! ---- STREAM (copy, scale, add, triad) ----
    integer(c_int32_t) function kp_f_triad(args, begin, end_) bind(C, name="kp_f_triad")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        real(dp), pointer, contiguous :: va(:), vb(:), vc(:)
        real(dp) :: scalar
        integer(i8) :: j

        kp_f_triad = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        call c_f_pointer(args%buf(1), va, [end_])
        call c_f_pointer(args%buf(2), vb, [end_])
        call c_f_pointer(args%buf(3), vc, [end_])
        scalar = args%fparam(1)
        select case (args%iparam(1))
        case (0)
            do j = begin + 1, end_
                va(j) = 1.0_dp
                vb(j) = 2.0_dp
                vc(j) = 0.0_dp
                va(j) = 2.0_dp * va(j)
            end do
        case (1)
            do j = begin + 1, end_
                vc(j) = va(j)
            end do
        case (2)
            do j = begin + 1, end_
                vb(j) = scalar * vc(j)
            end do
        case (3)
            do j = begin + 1, end_
                vc(j) = va(j) + vb(j)
            end do
        case (4)
            do j = begin + 1, end_
                va(j) = vb(j) + scalar * vc(j)
            end do
        case default
            return
        end select
        kp_f_triad = KP_KERNEL_OK
    end function kp_f_triad

    ! ---- Monte Carlo pi ----
    integer(c_int32_t) function kp_f_pi(args, begin, end_) bind(C, name="kp_f_pi")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        integer(i8), pointer :: partial(:)
        integer(i8) :: i, seed, hits
        real(dp) :: x, y

        kp_f_pi = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        if (.not. c_associated(args%partial) .or. bgt(args%items, KP_PI_MAX_SAMPLES)) return
        seed = args%iparam(1)
        hits = 0
        do i = begin, end_ - 1
            x = unit(splitmix64_at(seed, 2_i8 * i))
            y = unit(splitmix64_at(seed, 2_i8 * i + 1_i8))
            if ((x * x) + (y * y) < 1.0_dp) hits = hits + 1
        end do
        call c_f_pointer(args%partial, partial, [KP_PARTIAL_LEN])
        partial(1) = partial(1) + hits
        kp_f_pi = KP_KERNEL_OK
    end function kp_f_pi

    ! ---- laplace: one Jacobi sweep of rows [begin, end) from buf(1) into buf(2) ----
    ! C's element (i, j) of the row-major grid is element i*n + j + 1 here. The partial
    ! slot holds a double's bits; the max of |new - old| >= 0 is taken on those bits as
    ! int64, as in C (see there).
    integer(c_int32_t) function kp_f_laplace(args, begin, end_) bind(C, name="kp_f_laplace")
        type(kp_kargs), intent(in), optional :: args
        integer(c_int64_t), value :: begin, end_
        real(dp), pointer, contiguous :: old(:), nxt(:)
        integer(i8), pointer :: partial(:)
        real(dp) :: v, d
        integer(i8) :: n, i, j, r, err, bits

        kp_f_laplace = KP_KERNEL_BAD_ARGS
        if (.not. range_ok(args, begin, end_)) return
        if (bgt(args%n, KP_LAPLACE_MAX_N) .or. args%items /= args%n) return
        if (.not. c_associated(args%partial)) return
        n = args%n
        call c_f_pointer(args%buf(1), old, [n * n])
        call c_f_pointer(args%buf(2), nxt, [n * n])
        call c_f_pointer(args%partial, partial, [KP_PARTIAL_LEN])
        err = partial(1)
        do i = begin, end_ - 1
            r = i * n
            if (i == 0 .or. i == n - 1) then
                nxt(r + 1:r + n) = old(r + 1:r + n)
                cycle
            end if
            nxt(r + 1) = old(r + 1)
            do j = 1, n - 2
                v = 0.25_dp * (((old(r + j + 2) + old(r + j)) + old(r - n + j + 1)) &
                    + old(r + n + j + 1))
                d = abs(v - old(r + j + 1))
                bits = transfer(d, bits)
                nxt(r + j + 1) = v
                if (bits > err) err = bits
            end do
            nxt(r + n) = old(r + n)
        end do
        partial(1) = err
        kp_f_laplace = KP_KERNEL_OK
    end function kp_f_laplace

end module kp_kernels
